package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ferry-dev/ferry/ctl/render"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

func (a *app) newTransfersCmd() *cobra.Command {
	cmd := groupCmd("transfers", "List, inspect, watch and cancel the agent's transfers",
		`  ferryctl transfers list --state running
  ferryctl transfers get 01JC3W8ZQ4
  ferryctl transfers watch 01JC3W8ZQ4 -o json
  ferryctl transfers cancel 01JC3W8ZQ4`)
	cmd.AddCommand(a.newTransfersListCmd(), a.newTransfersGetCmd(), a.newTransfersWatchCmd(), a.newTransfersCancelCmd())
	cmd.AddCommand(a.newTransfersLimitCmd())
	return cmd
}

var stateNames = map[string]ferryv1.TransferState{
	"queued":    ferryv1.TransferState_TRANSFER_STATE_QUEUED,
	"running":   ferryv1.TransferState_TRANSFER_STATE_RUNNING,
	"succeeded": ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED,
	"failed":    ferryv1.TransferState_TRANSFER_STATE_FAILED,
	"cancelled": ferryv1.TransferState_TRANSFER_STATE_CANCELLED,
}

func parseStates(values []string) ([]ferryv1.TransferState, error) {
	var states []ferryv1.TransferState
	for _, v := range values {
		s, ok := stateNames[strings.ToLower(strings.TrimSpace(v))]
		if !ok {
			return nil, usageErrorf("invalid --state %q: want queued, running, succeeded, failed or cancelled", v)
		}
		states = append(states, s)
	}
	return states, nil
}

func (a *app) newTransfersListCmd() *cobra.Command {
	var states []string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the agent's transfers, newest first",
		Long: `list shows the transfers the agent knows, newest first: a table of ID, STATE, MODE,
PROGRESS, SOURCE → DEST and AGE, or with -o json {"transfers":[...]}.
--state keeps only transfers in the given states (repeat it or separate with commas).
The agent answers in pages; list fetches every page.`,
		Example: `  ferryctl transfers list
  ferryctl transfers list --state running --state queued
  ferryctl --agent 127.0.0.1:17070 transfers list --state failed,cancelled -o json`,
		Args: exactArgs(),
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, _ []string) error {
			st, err := parseStates(states)
			if err != nil {
				return err
			}
			resp, err := a.listTransfers(ctx, &ferryv1.ListTransfersRequest{States: st})
			if err != nil {
				return err
			}
			if a.format == render.JSON {
				return a.printJSON(resp)
			}
			width := 0
			if stdoutIsTerminal() {
				width = terminalWidth()
			}
			return render.TransfersTableWidth(a.stdout, resp.GetTransfers(), a.now(), width)
		}),
	}
	cmd.Flags().StringSliceVar(&states, "state", nil, "only transfers in this state: queued, running, succeeded, failed, cancelled")
	return cmd
}

func (a *app) newTransfersGetCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Show one transfer",
		Long: `get shows the current snapshot of one transfer as key: value lines, or with -o json the
transfer object. Exits 4 when the agent knows no such transfer.`,
		Example: `  ferryctl transfers get 01JC3W8ZQ4
  ferryctl --agent 127.0.0.1:17070 transfers get 01JC3W8ZQ4 -o json`,
		Args: exactArgs("ID"),
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, args []string) error {
			id, err := a.resolveID(ctx, args[0])
			if err != nil {
				return err
			}
			resp, err := call(ctx, a, ferryv1.AgentServiceClient.GetTransfer, &ferryv1.GetTransferRequest{Id: id})
			if err != nil {
				return err
			}
			if a.format == render.JSON {
				return a.printJSON(resp.GetTransfer())
			}
			return render.TransferDetails(a.stdout, resp.GetTransfer(), a.now())
		}),
	}
}

func (a *app) newTransfersWatchCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "watch ID",
		Short: "Follow a transfer to its end, rendered like copy",
		Long: `watch follows a transfer until its final state with the same output as copy (progress,
then the result line; or JSON update and result events). Exits 0 when it succeeded, 1 when it
failed or was cancelled. Ctrl-C stops watching (exit 130) and leaves the transfer running.`,
		Example: `  ferryctl transfers watch 01JC3W8ZQ4
  ferryctl --agent 127.0.0.1:17070 transfers watch 01JC3W8ZQ4 -o json`,
		Args: exactArgs("ID"),
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, args []string) error {
			id, err := a.resolveID(ctx, args[0])
			if err != nil {
				return err
			}
			return a.watch(ctx, id, false)
		}),
	}
}

func (a *app) newTransfersCancelCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a transfer",
		Long: `cancel asks the agent to stop a transfer (nothing is left under the final name) and
prints its state after the request, or with -o json the transfer object. It does not wait for
the final state: 'ferryctl transfers watch ID' does.`,
		Example: `  ferryctl transfers cancel 01JC3W8ZQ4
  ferryctl --agent 127.0.0.1:17070 transfers cancel 01JC3W8ZQ4 -o json`,
		Args: exactArgs("ID"),
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, args []string) error {
			id, err := a.resolveID(ctx, args[0])
			if err != nil {
				return err
			}
			resp, err := call(ctx, a, ferryv1.AgentServiceClient.CancelTransfer, &ferryv1.CancelTransferRequest{Id: id})
			if err != nil {
				return err
			}
			t := resp.GetTransfer()
			if a.format == render.JSON {
				return a.printJSON(t)
			}
			_, err = fmt.Fprintf(a.stdout, "%s: %s\n", t.GetId(), render.StateName(t.GetState()))
			return err
		}),
	}
}

// resolveID accepts a transfer ID or a unique prefix of one (as git does with commits): the
// agent is asked for the ID first; when it knows none, its transfers are searched.
func (a *app) resolveID(ctx context.Context, id string) (string, error) {
	_, err := call(ctx, a, ferryv1.AgentServiceClient.GetTransfer, &ferryv1.GetTransferRequest{Id: id})
	if status.Code(err) != codes.NotFound || id == "" {
		return id, err
	}
	all, lerr := a.listTransfers(ctx, &ferryv1.ListTransfersRequest{})
	if lerr != nil {
		return "", err
	}
	var match []string
	for _, t := range all.GetTransfers() {
		if strings.HasPrefix(t.GetId(), id) {
			match = append(match, t.GetId())
		}
	}
	switch {
	case len(match) == 1:
		return match[0], nil
	case len(match) > 1:
		if len(match) > 5 {
			match = append(match[:5], "...")
		}
		return "", usageErrorf("transfer ID prefix %q is ambiguous: %s", id, strings.Join(match, ", "))
	}
	return "", &exitError{code: exitNotFound, err: fmt.Errorf("no transfer %q (nor one whose ID starts so)", id)}
}
