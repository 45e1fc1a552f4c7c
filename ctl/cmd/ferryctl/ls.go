package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/ferry-dev/ferry/ctl/render"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

func (a *app) newLsCmd() *cobra.Command {
	var mode string
	cmd := &cobra.Command{
		Use:   "ls URL",
		Short: "List a directory (or describe a file) on the agent, an FTP server or another agent",
		Long: `ls lists a directory, or describes a file, at a path under the agent's root, an ftp://
URL or an agent:// URL (ListFiles). Text output is a table of NAME, SIZE and MODIFIED with a
trailing / on directories; -o json prints {"entries":[...]}, sorted by name. --mode picks the FTP
data-connection mode for FTP listings. The agent answers in pages; ls fetches every page.`,
		Example: `  ferryctl ls incoming/
  ferryctl --agent 127.0.0.1:17070 ls agent://127.0.0.1:17071/ -o json
  ferryctl ls ftp://user:secret@files.example:21/pub/ --mode active`,
		Args: exactArgs("URL"),
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, args []string) error {
			m, err := parseMode(cmd.Flags(), mode)
			if err != nil {
				return err
			}
			u, err := a.withCredentials(args[0])
			if err != nil {
				return err
			}
			resp, err := a.listFiles(ctx, &ferryv1.ListFilesRequest{Url: u, Mode: m})
			if err != nil {
				return err
			}
			if a.format == render.JSON {
				return a.printJSON(resp)
			}
			return render.FilesTableWidth(a.stdout, resp.GetEntries(), stdoutWidth())
		}),
	}
	cmd.Flags().StringVar(&mode, "mode", "auto", modeUsage)
	return cmd
}

// stdoutWidth is the terminal's width when stdout is one (tables and the result line are cut
// to it), else 0: the whole output, for scripts.
func stdoutWidth() int {
	if stdoutIsTerminal() {
		return terminalWidth()
	}
	return 0
}
