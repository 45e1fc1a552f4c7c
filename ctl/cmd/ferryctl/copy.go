package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ferry-dev/ferry/agent/datapath"
	"github.com/ferry-dev/ferry/ctl/render"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// cancelWait bounds how long an interrupted copy waits for its transfer's final state.
const cancelWait = 5 * time.Second

// reattachWait is how long a watch waits for an agent that said it is restarting.
const reattachWait = 2 * time.Minute

func (a *app) newCopyCmd() *cobra.Command {
	var mode, requestID, limitRate string
	var detach, restart bool
	var sel selectFlags
	cmd := &cobra.Command{
		Use:   "copy SRC DST",
		Short: "Start a transfer and watch it to the end",
		Long: `copy asks the agent to move SRC to DST (StartTransfer), then follows it (WatchTransfer)
until it ends. Exactly one of SRC and DST is a path under the agent's root; the other is an
ftp:// or agent:// URL. A trailing / on DST means "into this directory".

Trees follow rsync's trailing-slash rule, the same on every run: "tree" copies the directory
itself into DST (DST/tree), "tree/" copies its contents into DST. A glob in the last element of
SRC ("media/*.jpg") copies the matching entries into DST. A URL needs a path: agent://host:port/
is the agent's root, ftp://host/ the login directory.

--include/--exclude GLOB (repeatable) select files: a glob without "/" matches a file's name or
any directory name above it ("*.jpg", ".git"), one with "/" the path below SRC ("logs/*.gz").
--no-clobber skips files that exist at the destination; --update skips files whose destination
copy is newer. --dry-run lists what would be copied or skipped and changes nothing.

Text output: a live progress bar when stderr is a terminal; otherwise plain progress lines (at
most one a second, plus one per state change). A success ends with its result on stdout:
  succeeded: 100.0 MiB in 2.1s (47.6 MiB/s) mode=passive sha256=<hex>
and ", not verified (server has no HASH)" when the checksum could not be compared; a failure
is one line on stderr, "ferryctl: failed: <cause>", naming your file (never a part file).
JSON output: {"event":"update","transfer":{...}} per snapshot, then
{"event":"result","ok":true|false,"transfer":{...},"error":"..."}.

Ctrl-C cancels the transfer, waits up to 5s for its final state and exits 130.
With --detach, prints the transfer ID (or the transfer as JSON) and exits at once.

Transient faults (a reset connection, a stalled data connection, a peer agent restarting) are
retried by the agent with backoff, resuming from the part file; each attempt and its cause show
in the progress. A copy with the same SRC and DST as a failed one resumes its part file
(--restart starts over). --request-id makes the start idempotent: the same ID again (also after
the agent restarted) returns the transfer it started instead of a new one. If the agent restarts
while copy watches, copy re-attaches to the transfer, which goes on.`,
		Example: `  ferryctl --agent 127.0.0.1:17070 copy agent://127.0.0.1:17071/big.bin in/big.bin --mode active -o json
  ferryctl copy ftp://user:secret@files.example:21/pub/a.tar incoming/
  ferryctl copy outgoing/report.csv agent://10.0.0.7:7070/incoming/ --detach
  ferryctl copy agent://10.0.0.7:7070/big.iso in/ --request-id nightly-2026-12-01 -o json
  ferryctl copy agent://10.0.0.7:7070/big.iso in/ --limit-rate 50M
  ferryctl copy agent://10.0.0.7:7070/media/*.jpg photos/ --no-clobber
  ferryctl copy site/ ftp://deploy@www.example/htdocs/ --exclude .git --exclude '*.tmp' --dry-run`,
		Args: exactArgs("SRC", "DST"),
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, args []string) error {
			if len(requestID) > 128 {
				return usageErrorf("--request-id: at most 128 bytes")
			}
			limit, err := datapath.ParseRate(limitRate)
			if err != nil {
				return usageErrorf("--limit-rate: %v", err)
			}
			req, err := a.transferRequest(cmd, mode, &sel, false, args)
			if err != nil {
				return err
			}
			req.RequestId, req.Restart = requestID, restart
			req.LimitRate, req.Streams = limit, streamsOf(cmd)
			return a.copy(ctx, req, detach)
		}),
	}
	cmd.Flags().StringVar(&mode, "mode", "auto", modeUsage)
	cmd.Flags().BoolVar(&detach, "detach", false, "print the transfer ID and exit without watching")
	cmd.Flags().StringVar(&requestID, "request-id", "", "idempotency key: the same ID returns the transfer it started")
	cmd.Flags().BoolVar(&restart, "restart", false, "start over, ignoring a part file a failed copy left")
	cmd.Flags().StringVar(&limitRate, "limit-rate", "0", "bandwidth limit of this transfer in bytes per second, e.g. 500K, 50M (0: none); change it later with 'ferryctl transfers limit'")
	addStreamsFlag(cmd)
	sel.register(cmd, false)
	return cmd
}

func (a *app) copy(ctx context.Context, req *ferryv1.StartTransferRequest, detach bool) error {
	// Not cancelled by Ctrl-C: once the agent has started the transfer we want its ID, so that
	// an interrupt can cancel it rather than leave it running unseen.
	resp, err := call(context.WithoutCancel(ctx), a, ferryv1.AgentServiceClient.StartTransfer, req)
	if err != nil {
		return err
	}
	t := resp.GetTransfer()
	if detach {
		if a.format == render.JSON {
			return a.printJSON(t)
		}
		_, err := fmt.Fprintln(a.stdout, t.GetId())
		return err
	}
	return a.watch(ctx, t.GetId(), true)
}

// watch renders transfer id until its final state. On interrupt it cancels the transfer when
// cancelOnInterrupt (copy) and exits 130; otherwise (transfers watch) it only stops watching.
func (a *app) watch(ctx context.Context, id string, cancelOnInterrupt bool) error {
	w := render.NewWatcher(a.stdout, a.format, a.format == render.Text && a.stderrTTY,
		render.WithProgressOutput(a.stderr), render.WithClock(a.now), render.WithFailureAsError(),
		render.WithWidth(terminalWidth), render.WithVerbosity(a.quiet, a.verbose), render.WithResultWidth(stdoutWidth))
	final, err := a.follow(ctx, id, w)
	if err == nil {
		return w.Finish(final)
	}
	if !interrupted(ctx) {
		ee := a.classify(ctx, err)
		w.Fail(ee)
		return ee
	}
	if !cancelOnInterrupt {
		w.Fail(errInterrupted)
		return &exitError{code: exitInterrupted,
			err: fmt.Errorf("interrupted; transfer %s goes on ('ferryctl transfers cancel %s' stops it)", id, id)}
	}

	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cancelWait)
	defer cancel()
	c, err := a.api()
	if err != nil {
		return err
	}
	// If the cancel fails (the transfer may have ended meanwhile), the watch below still
	// reports the final state when there is one.
	resp, cerr := c.CancelTransfer(cctx, &ferryv1.CancelTransferRequest{Id: id})
	final = resp.GetTransfer()
	if !render.IsFinal(final.GetState()) {
		if final, err = a.follow(cctx, id, w); err != nil {
			w.Fail(errInterrupted)
			if cerr != nil {
				return &exitError{code: exitInterrupted,
					err: fmt.Errorf("interrupted; cancelling transfer %s failed: %s", id, status.Convert(cerr).Message())}
			}
			return &exitError{code: exitInterrupted,
				err: fmt.Errorf("interrupted; cancel of transfer %s requested, no final state within %s", id, cancelWait)}
		}
	}
	if err := w.Finish(final); err != nil {
		var fe *render.FinalError
		if !errors.As(err, &fe) {
			return &exitError{code: exitInterrupted, err: err}
		}
	}
	// Text: the one line that says what became of the transfer; JSON: the result event did.
	return &exitError{code: exitInterrupted, err: fmt.Errorf("interrupted; transfer %s %s", id, render.StateName(final.GetState())),
		silent: a.format == render.JSON}
}

// follow streams the snapshots of transfer id into w.Update and returns the final one.
// A stream that breaks after the agent was reached is re-opened (WatchTransfer starts with
// the current snapshot) until --timeout passes without an answer.
func (a *app) follow(ctx context.Context, id string, w *render.Watcher) (*ferryv1.Transfer, error) {
	c, err := a.api()
	if err != nil {
		return nil, err
	}
	var retryUntil time.Time
	backoff := 100 * time.Millisecond
	restarting := false
	for {
		final, got, err := a.followOnce(ctx, c, id, w)
		if final != nil || err == nil {
			return final, err
		}
		if got > 0 {
			retryUntil, backoff = time.Time{}, 100*time.Millisecond
		}
		if ctx.Err() != nil {
			return nil, err
		}
		if errors.Is(err, io.EOF) {
			// The stream ended without a final state: ask once more, directly.
			resp, gerr := call(ctx, a, ferryv1.AgentServiceClient.GetTransfer, &ferryv1.GetTransferRequest{Id: id})
			if gerr != nil {
				return nil, gerr
			}
			if t := resp.GetTransfer(); render.IsFinal(t.GetState()) {
				return t, nil
			}
			err = status.Error(codes.Unavailable, "watch stream ended before the transfer did")
		}
		if status.Code(err) != codes.Unavailable || !a.reached.Load() {
			return nil, err
		}
		if strings.Contains(status.Convert(err).Message(), "shutting down") && !restarting {
			// The agent checkpointed the transfer and will resume it when it is back: wait for
			// it longer than for an agent that merely dropped the stream.
			restarting = true
			retryUntil = a.now().Add(max(a.timeout, reattachWait))
			if a.format == render.Text {
				fmt.Fprintf(a.stderr, "ferryctl: the agent is restarting; re-attaching to transfer %s\n", id)
			}
		}
		if retryUntil.IsZero() {
			retryUntil = a.now().Add(max(a.timeout, time.Second))
		}
		if a.now().After(retryUntil) {
			return nil, fmt.Errorf("lost the agent while watching transfer %s: %s", id, status.Convert(err).Message())
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// followOnce reads one WatchTransfer stream. It returns the final snapshot, or the error that
// ended the stream (io.EOF when it ended without a final state), and how many snapshots came.
func (a *app) followOnce(ctx context.Context, c ferryv1.AgentServiceClient, id string, w *render.Watcher) (*ferryv1.Transfer, int, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.WatchTransfer(sctx, &ferryv1.WatchTransferRequest{Id: id})
	if err != nil {
		return nil, 0, err
	}
	for got := 0; ; got++ {
		resp, err := stream.Recv()
		if err != nil {
			return nil, got, err
		}
		a.reached.Store(true)
		t := resp.GetTransfer()
		if render.IsFinal(t.GetState()) {
			return t, got + 1, nil
		}
		w.Update(t)
	}
}
