package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/ferry-dev/ferry/agent/datapath"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// transferRequest is what copy and sync start: the endpoints (with FTP logins from the config
// or ~/.netrc), the mode and the selection options.
func (a *app) transferRequest(cmd *cobra.Command, mode string, sel *selectFlags, sync bool, args []string) (*ferryv1.StartTransferRequest, error) {
	m, err := parseMode(cmd.Flags(), mode)
	if err != nil {
		return nil, err
	}
	opts, err := sel.options(sync)
	if err != nil {
		return nil, err
	}
	src, dst, err := a.endpoints(args[0], args[1])
	if err != nil {
		return nil, err
	}
	return &ferryv1.StartTransferRequest{Source: src, Destination: dst, Mode: m, Options: opts}, nil
}

// selectFlags are the file selection and comparison flags of copy and sync.
type selectFlags struct {
	include, exclude                                 []string
	noClobber, update, dryRun, deleteExtra, checksum bool
}

func (f *selectFlags) register(cmd *cobra.Command, sync bool) {
	fl := cmd.Flags()
	fl.StringArrayVar(&f.include, "include", nil, "only files matching GLOB (repeatable; name or any directory name, or a path below SRC when it holds /)")
	fl.StringArrayVar(&f.exclude, "exclude", nil, "skip files matching GLOB (repeatable; as --include); sync --delete keeps them too")
	fl.BoolVar(&f.dryRun, "dry-run", false, "list what would be copied, skipped and deleted; change nothing")
	if sync {
		fl.BoolVar(&f.deleteExtra, "delete", false, "remove files at the destination that the source lacks")
		fl.BoolVar(&f.checksum, "checksum", false, "compare SHA-256 (the server's HASH and the local file) instead of size and time")
		return
	}
	fl.BoolVar(&f.noClobber, "no-clobber", false, "skip files that exist at the destination")
	fl.BoolVar(&f.update, "update", false, "skip files whose destination copy is newer than the source")
}

// options is the API's TransferOptions (nil when nothing is selected or compared).
func (f *selectFlags) options(sync bool) (*ferryv1.TransferOptions, error) {
	if f.noClobber && f.update {
		return nil, usageErrorf("--no-clobber and --update exclude each other (--no-clobber skips every existing file)")
	}
	o := &ferryv1.TransferOptions{
		Include: f.include, Exclude: f.exclude, NoClobber: f.noClobber, Update: f.update,
		Sync: sync, Checksum: f.checksum, Delete: f.deleteExtra, DryRun: f.dryRun,
	}
	if !sync && len(f.include) == 0 && len(f.exclude) == 0 && !f.noClobber && !f.update && !f.dryRun {
		return nil, nil
	}
	return o, nil
}

func (a *app) newSyncCmd() *cobra.Command {
	var mode, limitRate string
	var detach bool
	var sel selectFlags
	cmd := &cobra.Command{
		Use:   "sync SRC DST",
		Short: "Make DST hold what SRC holds, moving only what differs",
		Long: `sync moves the files of SRC that DST lacks or holds in another version, and nothing else: a
file is skipped when DST has it with the same size and a modification time not older than
the source's (--checksum: the same SHA-256, from the server's HASH and the local file). A
second sync moves 0 files. --delete also removes files in DST that SRC lacks (files excluded by
--exclude or not matched by --include are kept). --dry-run lists every action and changes
nothing. Between agents (agent://) and to or from any FTP server; exactly one side is a path
under the agent's root.

Trees follow the same rule as copy: "tree" syncs the directory itself as DST/tree, "tree/"
syncs its contents into DST. Directories the source lacks are removed with --delete once empty
on this agent's side; on an FTP server only files are removed.

Output and exit codes are those of copy; the result line counts what was skipped and deleted:
  succeeded: 2.0 MiB in 0.4s (5.0 MiB/s) mode=passive files=2 skipped=40 deleted=1`,
		Example: `  ferryctl sync agent://10.0.0.7:7070/photos/ backup/photos/ --delete
  ferryctl sync site/ ftp://deploy@www.example/htdocs/ --exclude '*.tmp' --dry-run
  ferryctl sync reports/ agent://archive:7070/reports/ --checksum -o json | jq -c .transfer.files_skipped
  ferryctl sync agent://10.0.0.7:7070/media/ media/ --limit-rate 20M --streams 4`,
		Args: exactArgs("SRC", "DST"),
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, args []string) error {
			limit, err := datapath.ParseRate(limitRate)
			if err != nil {
				return usageErrorf("--limit-rate: %v", err)
			}
			req, err := a.transferRequest(cmd, mode, &sel, true, args)
			if err != nil {
				return err
			}
			req.LimitRate, req.Streams = limit, streamsOf(cmd)
			return a.copy(ctx, req, detach)
		}),
	}
	cmd.Flags().StringVar(&mode, "mode", "auto", modeUsage)
	cmd.Flags().BoolVar(&detach, "detach", false, "print the transfer ID and exit without watching")
	cmd.Flags().StringVar(&limitRate, "limit-rate", "0", "bandwidth limit of this transfer in bytes per second, e.g. 500K, 50M (0: none); change it later with 'ferryctl transfers limit'")
	addStreamsFlag(cmd)
	sel.register(cmd, true)
	return cmd
}
