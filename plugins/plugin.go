package plugins

import (
	"context"
	"errors"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pluginv1 "github.com/ferry-dev/ferry/proto/ferry/plugin/v1"
)

// PluginName is the single go-plugin name every Ferry plugin serves: one gRPC server carrying
// InfoService and the services of the kinds the plugin declares.
const PluginName = "ferry"

// Impl is what a plugin binary serves. Set the kinds it implements; the others stay nil.
type Impl struct {
	Name    string // short name for logs and `ferryctl agent info`
	Version string
	Auth    Authenticator
	Hook    Hook
}

// Kinds lists the kinds impl serves ("auth", "hook").
func (impl Impl) Kinds() []string {
	var k []string
	if impl.Auth != nil {
		k = append(k, "auth")
	}
	if impl.Hook != nil {
		k = append(k, "hook")
	}
	return k
}

// Serve runs impl as a plugin and returns when the agent ends the plugin. Call it from main:
//
//	func main() { plugins.Serve(plugins.Impl{Name: "my-auth", Auth: myAuth{}}) }
//
// It exits the process with status 1 when the binary is run by hand (not by an agent).
func Serve(impl Impl) {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         plugin.PluginSet{PluginName: &Plugin{Impl: impl}},
		GRPCServer:      plugin.DefaultGRPCServer,
		Logger: hclog.New(&hclog.LoggerOptions{
			Name: impl.Name, Level: hclog.Info, JSONFormat: true, // the agent parses it
		}),
	})
}

// Plugin is the go-plugin glue: GRPCServer in the plugin process, GRPCClient in the agent.
type Plugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl Impl // plugin side only
}

var _ plugin.GRPCPlugin = (*Plugin)(nil)

// GRPCServer registers InfoService and the kinds' services on the plugin's gRPC server.
func (p *Plugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl.Auth == nil && p.Impl.Hook == nil {
		return errors.New("ferry plugin: Impl serves no kind (set Auth or Hook)")
	}
	pluginv1.RegisterInfoServiceServer(s, &infoServer{impl: p.Impl})
	if p.Impl.Auth != nil {
		pluginv1.RegisterAuthServiceServer(s, &authServer{impl: p.Impl.Auth})
	}
	if p.Impl.Hook != nil {
		pluginv1.RegisterHookServiceServer(s, &hookServer{impl: p.Impl.Hook})
	}
	return nil
}

// GRPCClient returns a *Client over the plugin's connection (agent side).
func (p *Plugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return NewClient(c), nil
}
