//go:build !unix

package main

import (
	"os"

	"github.com/mattn/go-isatty"
)

// stderrIsTerminal reports whether stderr can show a live progress bar.
func stderrIsTerminal() bool {
	fd := os.Stderr.Fd()
	return isatty.IsTerminal(fd) || isatty.IsCygwinTerminal(fd)
}

func terminalWidth() int { return 80 }

func stdoutIsTerminal() bool { return isatty.IsTerminal(os.Stdout.Fd()) }
