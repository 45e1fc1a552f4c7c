package plugins

import (
	"context"
	"fmt"

	"google.golang.org/grpc"

	pluginv1 "github.com/ferry-dev/ferry/proto/ferry/plugin/v1"
)

// Client is the agent's side of one plugin connection: Info, and the kinds' interfaces over
// gRPC. Every call passes the caller's context (and so its deadline) to the plugin.
type Client struct {
	info pluginv1.InfoServiceClient
	auth pluginv1.AuthServiceClient
	hook pluginv1.HookServiceClient
}

// NewClient wraps a connection to a plugin's gRPC server.
func NewClient(c grpc.ClientConnInterface) *Client {
	return &Client{
		info: pluginv1.NewInfoServiceClient(c),
		auth: pluginv1.NewAuthServiceClient(c),
		hook: pluginv1.NewHookServiceClient(c),
	}
}

// Info is what a plugin says of itself.
type Info struct {
	Name    string
	Version string
	Kinds   []string // "auth", "hook"
}

// Has reports whether the plugin serves kind.
func (i Info) Has(kind string) bool {
	for _, k := range i.Kinds {
		if k == kind {
			return true
		}
	}
	return false
}

// Info asks the plugin what it is.
func (c *Client) Info(ctx context.Context) (Info, error) {
	r, err := c.info.GetInfo(ctx, &pluginv1.GetInfoRequest{})
	if err != nil {
		return Info{}, err
	}
	out := Info{Name: r.GetName(), Version: r.GetVersion()}
	for _, k := range r.GetKinds() {
		switch k {
		case pluginv1.Kind_KIND_AUTH:
			out.Kinds = append(out.Kinds, "auth")
		case pluginv1.Kind_KIND_HOOK:
			out.Kinds = append(out.Kinds, "hook")
		default:
			return Info{}, fmt.Errorf("plugin declares unknown kind %v", k)
		}
	}
	return out, nil
}

// Auth is the plugin's Authenticator (valid when Info lists "auth").
func (c *Client) Auth() Authenticator { return authClient{c.auth} }

// Hook is the plugin's Hook (valid when Info lists "hook").
func (c *Client) Hook() Hook { return hookClient{c.hook} }

type authClient struct{ c pluginv1.AuthServiceClient }

func (a authClient) Authenticate(ctx context.Context, req AuthRequest) (AuthResponse, error) {
	r, err := a.c.Authenticate(ctx, &pluginv1.AuthenticateRequest{
		User: req.User, Password: req.Password, RemoteAddress: req.Remote, Tls: req.TLS,
	})
	if err != nil {
		return AuthResponse{}, err
	}
	out := AuthResponse{Home: r.GetHome(), ReadOnly: r.GetReadOnly(), Reason: r.GetReason()}
	switch r.GetResult() {
	case pluginv1.AuthResult_AUTH_RESULT_ALLOW:
		out.Result = AuthAllow
	case pluginv1.AuthResult_AUTH_RESULT_DENY:
		out.Result = AuthDeny
	case pluginv1.AuthResult_AUTH_RESULT_UNKNOWN_USER:
		out.Result = AuthUnknownUser
	default:
		return AuthResponse{}, fmt.Errorf("plugin answered no result (%v)", r.GetResult())
	}
	return out, nil
}

type hookClient struct{ c pluginv1.HookServiceClient }

func (h hookClient) Notify(ctx context.Context, e Event) error {
	_, err := h.c.Notify(ctx, &pluginv1.NotifyRequest{Event: eventToProto(e)})
	return err
}

func (h hookClient) Check(ctx context.Context, e Event) (Decision, error) {
	r, err := h.c.Check(ctx, &pluginv1.CheckRequest{Event: eventToProto(e)})
	if err != nil {
		return Decision{}, err
	}
	return Decision{Allow: r.GetAllow(), Reason: r.GetReason()}, nil
}
