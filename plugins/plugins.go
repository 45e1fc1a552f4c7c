// Package plugins is the room of Ferry's plugin SDK (authentication, transfer hooks, storage),
// loaded as separate processes with hashicorp/go-plugin over gRPC with AutoMTLS.
//
// A plugin is a main of a few lines: implement Authenticator (auth) and/or Hook (hook) and call
//
//	plugins.Serve(plugins.Impl{Name: "my-plugin", Auth: myAuth{}})
//
// The contracts are protobuf (proto/ferry/plugin/v1); this package shims them to the Go
// interfaces in both directions (server.go in the plugin, client.go in the agent), passing the
// caller's context, and so the agent's deadline, through. The agent side (loading, restarts,
// timeouts, fail-open/closed) is agent/pluginhost. docs/plugins.md is the author's guide.
package plugins

import "github.com/hashicorp/go-plugin"

// Handshake is shared by the agent and every plugin binary. Bump ProtocolVersion on any
// incompatible change to a plugin contract.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "FERRY_PLUGIN",
	MagicCookieValue: "e1c5b0f7-ferry-plugin-v1",
}
