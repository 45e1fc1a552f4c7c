// Command ferryctl drives ferry-agents over their gRPC API: start and watch transfers, list
// them, list files and describe an agent. It speaks only the public API (proto/ferry/v1).
package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"
)

// errInterrupted is the cancel cause of the command context after SIGINT or SIGTERM.
var errInterrupted = errors.New("interrupted")

func main() {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		cancel(errInterrupted) // first signal: commands wind down (copy cancels its transfer)
		<-sigs
		os.Exit(exitInterrupted) // second signal: give up at once
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr, stderrIsTerminal()))
}
