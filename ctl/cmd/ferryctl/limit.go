package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ferry-dev/ferry/agent/datapath"
	"github.com/ferry-dev/ferry/ctl/render"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

func (a *app) newTransfersLimitCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "limit ID RATE",
		Short: "Change a running transfer's bandwidth limit",
		Long: `limit sets the bandwidth limit of a queued or running transfer (UpdateTransfer): RATE is
bytes per second with an optional K, M, G suffix (powers of 1024), 0 removes the transfer's own
limit (the agent's --limit-rate still applies). The new limit takes effect within a fraction of
a second and is kept if the agent restarts. Prints the transfer's id and new limit, or with
-o json the transfer object. A finished transfer is refused (exit 1); an unknown ID exits 4.`,
		Example: `  ferryctl transfers limit 01JC3W8ZQ4 10M
  ferryctl transfers limit 01JC3W8ZQ4 0
  ferryctl --agent 127.0.0.1:17070 transfers limit 01JC3W8ZQ4 512K -o json`,
		Args: exactArgs("ID", "RATE"),
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, args []string) error {
			bps, err := datapath.ParseRate(args[1])
			if err != nil {
				return usageErrorf("RATE: %v", err)
			}
			resp, err := call(ctx, a, ferryv1.AgentServiceClient.UpdateTransfer,
				&ferryv1.UpdateTransferRequest{Id: args[0], LimitRate: bps})
			if err != nil {
				return err
			}
			t := resp.GetTransfer()
			if a.format == render.JSON {
				return a.printJSON(t)
			}
			limit := "none"
			if t.GetLimitRate() > 0 {
				limit = render.Rate(float64(t.GetLimitRate()))
			}
			_, err = fmt.Fprintf(a.stdout, "%s: %s, limit %s\n", t.GetId(), render.StateName(t.GetState()), limit)
			return err
		}),
	}
}
