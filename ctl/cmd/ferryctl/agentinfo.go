package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/ferry-dev/ferry/ctl/render"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

func (a *app) newAgentCmd() *cobra.Command {
	cmd := groupCmd("agent", "Inspect the agent", `  ferryctl agent info`)
	cmd.AddCommand(&cobra.Command{
		Use:   "info",
		Short: "Describe the agent: version, addresses, served root, FTP settings",
		Long: `info prints GetAgentInfo as key: value lines (keys are the JSON field names), or with
-o json the response object. A quick way to check that an agent is reachable (exit 3 if not).`,
		Example: `  ferryctl agent info
  ferryctl --agent unix:///run/ferry/agent.sock agent info -o json`,
		Args: exactArgs(),
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, _ []string) error {
			resp, err := call(ctx, a, ferryv1.AgentServiceClient.GetAgentInfo, &ferryv1.GetAgentInfoRequest{})
			if err != nil {
				return err
			}
			if a.format == render.JSON {
				return a.printJSON(resp)
			}
			return render.AgentInfo(a.stdout, resp, a.now())
		}),
	})
	return cmd
}
