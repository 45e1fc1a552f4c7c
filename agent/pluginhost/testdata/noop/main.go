// Command noop is a test plugin that serves both kinds and does nothing: it measures the cost
// of a plugin call itself (pluginhost's TestOverhead and benchmarks).
package main

import (
	"context"

	"github.com/ferry-dev/ferry/plugins"
)

type noop struct{}

func (noop) Authenticate(_ context.Context, r plugins.AuthRequest) (plugins.AuthResponse, error) {
	if r.User == "u" && r.Password == "p" {
		return plugins.Allow("/", false), nil
	}
	return plugins.Unknown(""), nil
}

func (noop) Notify(context.Context, plugins.Event) error { return nil }

func (noop) Check(context.Context, plugins.Event) (plugins.Decision, error) {
	return plugins.Decision{Allow: true}, nil
}

func main() { plugins.Serve(plugins.Impl{Name: "noop", Auth: noop{}, Hook: noop{}}) }
