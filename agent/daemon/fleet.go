package daemon

import (
	"fmt"

	"github.com/ferry-dev/ferry/agent/fleet"
	"github.com/ferry-dev/ferry/agent/server"
)

// newFleet builds the fleet coordinator: its jobs in the store's "fleet" bucket (apart from
// the transfer engine's records), and the peer token and TLS to reach other agents.
func (d *Daemon) newFleet(peers *server.Peers) (*fleet.Coordinator, error) {
	cfg := fleet.Config{Token: peers.Token, TLS: peers.TLS, Logger: d.log.With("part", "fleet"),
		Poll: d.cfg.FleetPoll, RetryBase: d.cfg.FleetRetryBase}
	if d.store != nil {
		b, err := d.store.Bucket("fleet")
		if err != nil {
			return nil, fmt.Errorf("state-dir: %w", err)
		}
		cfg.Store = b
	}
	return fleet.New(cfg)
}
