// Package plugins is the room of Ferry's plugin SDK (authentication, transfer hooks, storage),
// loaded as separate processes with hashicorp/go-plugin over gRPC with AutoMTLS.
//
// Only the handshake is here today: it is the contract every Ferry plugin binary and the agent
// must share, so it is fixed first. The plugin kinds come with the plugins issue, one file
// family per kind (<kind>.go interface, plugin.go, client.go/server.go shims, plugin_test.go),
// as docs/architecture.md describes. Today the engine writes to the served root directly; a
// storage interface for plugins to stand behind is part of that issue.
package plugins

import "github.com/hashicorp/go-plugin"

// Handshake is shared by the agent and every plugin binary. Bump ProtocolVersion on any
// incompatible change to a plugin contract.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "FERRY_PLUGIN",
	MagicCookieValue: "e1c5b0f7-ferry-plugin-v1",
}
