package main

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"

	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// completions wires shell completion (ferryctl completion bash|zsh|fish|powershell): modes,
// states, output formats, agent names (contexts) and transfer IDs (asked of the agent, briefly).
func (a *app) completions(root *cobra.Command) {
	fixed := func(values ...string) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return values, cobra.ShellCompDirectiveNoFileComp
		}
	}
	_ = root.RegisterFlagCompletionFunc("output", fixed("text", "json"))
	_ = root.RegisterFlagCompletionFunc("agent", func(c *cobra.Command, args []string, s string) ([]string, cobra.ShellCompDirective) {
		return a.completeContexts(c, nil, s)
	})
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Flags().Lookup("mode") != nil {
			_ = c.RegisterFlagCompletionFunc("mode", fixed("auto", "passive", "active"))
		}
		if c.Flags().Lookup("state") != nil {
			_ = c.RegisterFlagCompletionFunc("state", fixed("queued", "running", "succeeded", "failed", "cancelled"))
		}
		if p := c.Parent(); p != nil && p.Name() == "transfers" && strings.HasSuffix(c.Use, " ID") {
			c.ValidArgsFunction = a.completeIDs
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// completeIDs lists the agent's transfer IDs (running and queued first), with their endpoints
// as descriptions.
func (a *app) completeIDs(cmd *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	// Completion runs without PersistentPreRun: apply the context here.
	if err := a.applyContext(cmd); err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	a.timeout = 2 * time.Second
	resp, err := call(context.Background(), a, ferryv1.AgentServiceClient.ListTransfers, &ferryv1.ListTransfersRequest{PageSize: 200})
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, t := range resp.GetTransfers() {
		if strings.HasPrefix(t.GetId(), prefix) {
			out = append(out, t.GetId()+"\t"+strings.TrimPrefix(t.GetState().String(), "TRANSFER_STATE_")+" "+t.GetSource()+" → "+t.GetDestination())
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
