//go:build unix

package main

import (
	"os"

	"github.com/mattn/go-isatty"
	"golang.org/x/sys/unix"
)

// stderrIsTerminal reports whether stderr can show a live progress bar: a terminal that knows
// its width (a pty left at 0x0, as under script(1) without a terminal, cannot).
func stderrIsTerminal() bool {
	fd := os.Stderr.Fd()
	if !isatty.IsTerminal(fd) {
		return false
	}
	ws, err := unix.IoctlGetWinsize(int(fd), unix.TIOCGWINSZ)
	return err == nil && ws.Col > 0
}

// terminalWidth is stderr's width in columns (80 when unknown): the live progress line and
// tables are cut to it.
func terminalWidth() int {
	ws, err := unix.IoctlGetWinsize(int(os.Stderr.Fd()), unix.TIOCGWINSZ)
	if err != nil || ws.Col == 0 {
		return 80
	}
	return int(ws.Col)
}

// stdoutIsTerminal reports whether tables go to a terminal (then they are cut to its width).
func stdoutIsTerminal() bool { return isatty.IsTerminal(os.Stdout.Fd()) }
