package pluginhost

import (
	"context"
	"fmt"

	"github.com/ferry-dev/ferry/agent/ftpserver"
	"github.com/ferry-dev/ferry/plugins"
)

// Authenticators are the auth plugins, in --plugin order, for ftpserver.Config.Authenticators.
// While a plugin is down its logins fail closed (refused), whatever the order.
func (h *Host) Authenticators() []ftpserver.Authenticator {
	var out []ftpserver.Authenticator
	for _, p := range h.procs {
		if p.info.Has("auth") {
			out = append(out, authAdapter{p})
		}
	}
	return out
}

type authAdapter struct{ p *proc }

func (a authAdapter) Authenticate(ctx context.Context, l ftpserver.Login) (ftpserver.Identity, error) {
	req := plugins.AuthRequest{User: l.User, Password: l.Password, TLS: l.TLS}
	if l.Remote.IsValid() {
		req.Remote = l.Remote.String()
	}
	var r plugins.AuthResponse
	err := a.p.call(ctx, func(ctx context.Context, c *plugins.Client) (err error) {
		r, err = c.Auth().Authenticate(ctx, req)
		return err
	})
	if err != nil {
		return ftpserver.Identity{}, fmt.Errorf("fail closed: %w", err) // never the password: req is not formatted
	}
	switch r.Result {
	case plugins.AuthAllow:
		return ftpserver.Identity{Home: r.Home, ReadOnly: r.ReadOnly}, nil
	case plugins.AuthDeny:
		reason := r.Reason
		if reason == "" {
			reason = "denied"
		}
		return ftpserver.Identity{}, fmt.Errorf("plugin %s: %s", a.p.name, reason)
	}
	return ftpserver.Identity{}, errUnknown{a.p.name, r.Reason}
}

type errUnknown struct{ plugin, reason string }

func (e errUnknown) Error() string {
	if e.reason == "" {
		return fmt.Sprintf("plugin %s: unknown user", e.plugin)
	}
	return fmt.Sprintf("plugin %s: unknown user (%s)", e.plugin, e.reason)
}

func (e errUnknown) Is(target error) bool { return target == ftpserver.ErrUnknownUser }
