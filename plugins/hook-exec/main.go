// Command hook-exec is a Ferry hook plugin: it runs a command for each event, with the event
// in its environment and as JSON on its stdin. For checks (before_start, before_publish) the
// exit code decides: 0 allows, anything else denies, and the first line of its output is the
// reason. For other events the exit code is only logged.
//
//	ferry-agent --root /srv/ferry --plugin '/usr/lib/ferry/hook-exec -events before_publish -- /usr/local/bin/scan-upload'
//
// Environment: FERRY_EVENT (the kind), FERRY_PATH (before_publish: the final name, root-
// relative), FERRY_ERROR, and for transfers FERRY_TRANSFER_ID, FERRY_SOURCE,
// FERRY_DESTINATION, FERRY_DIRECTION, FERRY_STATE, FERRY_BYTES_DONE, FERRY_SHA256; for FTP
// file events FERRY_FTP_USER, FERRY_FTP_PATH, FERRY_FTP_TO, FERRY_FTP_BYTES. The command runs
// with the agent's timeout; it is killed when that ends.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/ferry-dev/ferry/plugins"
)

func main() {
	fs := flag.NewFlagSet("hook-exec", flag.ExitOnError)
	events := fs.String("events", "", "comma-separated kinds that run the command (default: all); e.g. before_publish,succeeded")
	_ = fs.Parse(os.Args[1:])
	if fs.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "hook-exec: want a command after the flags: hook-exec [-events K,K] -- COMMAND [ARGS…]")
		os.Exit(2)
	}
	h := &execHook{argv: fs.Args()}
	if *events != "" {
		h.only = map[plugins.EventKind]bool{}
		for _, k := range strings.Split(*events, ",") {
			h.only[plugins.EventKind(strings.TrimSpace(k))] = true
		}
	}
	plugins.Serve(plugins.Impl{Name: "hook-exec", Version: "1", Hook: h})
}

type execHook struct {
	argv []string
	only map[plugins.EventKind]bool // nil: every kind
}

func (h *execHook) wants(k plugins.EventKind) bool { return h.only == nil || h.only[k] }

func (h *execHook) Notify(ctx context.Context, e plugins.Event) error {
	if !h.wants(e.Kind) {
		return nil
	}
	code, line, err := h.run(ctx, e)
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("%s exited %d: %s", h.argv[0], code, line)
	}
	return nil
}

func (h *execHook) Check(ctx context.Context, e plugins.Event) (plugins.Decision, error) {
	if !h.wants(e.Kind) {
		return plugins.Decision{Allow: true}, nil
	}
	code, line, err := h.run(ctx, e)
	if err != nil {
		return plugins.Decision{}, err
	}
	if code != 0 {
		if line == "" {
			line = fmt.Sprintf("%s exited %d", h.argv[0], code)
		}
		return plugins.Decision{Reason: line}, nil
	}
	return plugins.Decision{Allow: true}, nil
}

// run starts the command and returns its exit code and first output line (at most 200
// bytes). err is set when it could not run or was killed at the deadline.
func (h *execHook) run(ctx context.Context, e plugins.Event) (int, string, error) {
	in, err := json.Marshal(e)
	if err != nil {
		return 0, "", err
	}
	cmd := exec.CommandContext(ctx, h.argv[0], h.argv[1:]...)
	cmd.Stdin = bytes.NewReader(in)
	cmd.Env = append(os.Environ(), env(e)...)
	var out limited
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr // the agent's log
	err = cmd.Run()
	line := firstLine(out.b.Bytes())
	if ctx.Err() != nil {
		return 0, "", fmt.Errorf("%s: %w", h.argv[0], ctx.Err())
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), line, nil
	}
	if err != nil {
		return 0, "", err
	}
	return 0, line, nil
}

func env(e plugins.Event) []string {
	v := []string{"FERRY_EVENT=" + string(e.Kind), "FERRY_PATH=" + e.Path, "FERRY_ERROR=" + e.Error}
	if t := e.Transfer; t != nil {
		v = append(v, "FERRY_TRANSFER_ID="+t.ID, "FERRY_SOURCE="+t.Source, "FERRY_DESTINATION="+t.Destination,
			"FERRY_DIRECTION="+t.Direction, "FERRY_STATE="+t.State, "FERRY_BYTES_DONE="+strconv.FormatInt(t.BytesDone, 10),
			"FERRY_SHA256="+t.SHA256)
	}
	if f := e.File; f != nil {
		v = append(v, "FERRY_FTP_USER="+f.User, "FERRY_FTP_PATH="+f.Path, "FERRY_FTP_TO="+f.To,
			"FERRY_FTP_BYTES="+strconv.FormatInt(f.Bytes, 10))
	}
	return v
}

// limited keeps the first 4 KiB written to it.
type limited struct{ b bytes.Buffer }

func (l *limited) Write(p []byte) (int, error) {
	if room := 4096 - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func firstLine(b []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(b))
	if !sc.Scan() {
		return ""
	}
	s := strings.TrimSpace(sc.Text())
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
