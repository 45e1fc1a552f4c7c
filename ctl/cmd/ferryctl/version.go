package main

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/ferry-dev/ferry/ctl/render"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// version is set at build time: go build -ldflags "-X main.version=…" (make build does).
var version = ""

// apiVersion is the API ferryctl speaks (the proto package).
const apiVersion = "ferry.v1"

func clientVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			return v
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
	}
	return "dev"
}

func (a *app) newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print ferryctl's version and, when it answers, the agent's",
		Long: `version prints ferryctl's version and API, then asks the agent (GetAgentInfo, 3 s at most)
for its version. An agent that does not answer is reported on that line; the command still
exits 0 (ferryctl --version prints the client's version only, without asking anyone).`,
		Example: `  ferryctl version
  ferryctl --agent prod version -o json | jq -r .agent.version`,
		Args: exactArgs(),
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, _ []string) error {
			type side struct {
				Version string `json:"version,omitempty"`
				API     string `json:"api,omitempty"`
				Address string `json:"address,omitempty"`
				Error   string `json:"error,omitempty"`
			}
			out := struct {
				Client side `json:"client"`
				Agent  side `json:"agent"`
			}{Client: side{Version: clientVersion(), API: apiVersion}}
			out.Agent.Address = agentTarget(a.agent)
			if a.timeout <= 0 || a.timeout > 3*time.Second {
				a.timeout = 3 * time.Second
			}
			resp, err := call(ctx, a, ferryv1.AgentServiceClient.GetAgentInfo, &ferryv1.GetAgentInfoRequest{})
			if err != nil {
				out.Agent.Error = a.classify(ctx, err).Error()
			} else {
				out.Agent.Version, out.Agent.API = resp.GetVersion(), apiVersion
			}
			if a.format == render.JSON {
				b, _ := json.Marshal(out)
				_, err := fmt.Fprintln(a.stdout, string(b))
				return err
			}
			fmt.Fprintf(a.stdout, "ferryctl  %s  (api %s, %s)\n", out.Client.Version, apiVersion, runtime.Version())
			if out.Agent.Error != "" {
				fmt.Fprintf(a.stdout, "agent     not reachable: %s\n", out.Agent.Error)
				return nil
			}
			_, err = fmt.Fprintf(a.stdout, "agent     %s  (api %s) at %s\n", out.Agent.Version, out.Agent.API, out.Agent.Address)
			return err
		}),
	}
}

// newManCmd generates man pages from the commands (make man); hidden.
func newManCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:    "__man DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			root.DisableAutoGenTag = true
			return doc.GenManTree(root, &doc.GenManHeader{Title: "FERRYCTL", Section: "1", Source: "Ferry " + clientVersion()}, args[0])
		},
	}
}
