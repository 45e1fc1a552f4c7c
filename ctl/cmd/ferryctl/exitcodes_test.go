package main

// The table of mistakes a user makes (issue 17), each with the exit code and the one stderr
// line ferryctl answers it with. Run with -v to print the table (docs/ferryctl.md shows it).

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/testagent"
	"github.com/ferry-dev/ferry/internal/testftp"
)

func TestExitCodeTable(t *testing.T) {
	a, b := newPair(t)
	v := testftp.StartVsftpd(t, testftp.Options{Extra: []string{"delay_failed_login=4"}})
	vbase := fmt.Sprintf("ftp://%s:%s@%s%s", url.PathEscape(v.User), url.PathEscape(v.Password), v.Addr, v.Pub)
	vbad := fmt.Sprintf("ftp://%s:%s@%s%s", url.PathEscape(v.User), url.PathEscape(v.BadPassword), v.Addr, v.Pub)
	writeFile(t, a.Root, "out/a.bin", 1000)
	writeFile(t, a.Root, "in/x.bin", 10)
	writeFile(t, b.Root, "x.bin", 10)
	// A destination whose final name is a non-empty directory: the rename of the part file
	// fails, and the error must name the user's file, not the part file.
	writeFile(t, b.Root, "clash/a.bin/keep", 1)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	// A transfer to look up by a prefix of its ID.
	r := ferryctl(t, "--agent", a.GRPC, "copy", b.URL("x.bin"), "in/y.bin", "--detach")
	wantCode(t, r, 0)
	id := strings.TrimSpace(r.stdout)

	rows := []struct {
		mistake string
		args    []string
		code    int
		want    string // regexp the stderr line must match
		not     string // text stderr must not hold
	}{
		{"URL without a path", []string{"copy", "agent://" + b.GRPC, "in/x.bin"}, 2, `has no path; .*agent://` + regexp.QuoteMeta(b.GRPC) + `/ means the root`, ""},
		{"ftp:// URL without a path", []string{"copy", vbase[:strings.Index(vbase, v.Pub)], "in/x.bin"}, 2, `has no path; .*means the login directory`, v.Password},
		{"password with # not percent-encoded", []string{"copy", "ftp://bob:pa#ss@" + v.Addr + "/x", "in/"}, 2, `percent-encode`, "pa#ss"},
		{"bad --mode", []string{"copy", "a", "b", "--mode", "sideways"}, 2, `invalid --mode "sideways"`, ""},
		{"--no-clobber with --update", []string{"copy", "a", "b", "--no-clobber", "--update"}, 2, `exclude each other`, ""},
		{"--delete on copy", []string{"copy", "a", "b", "--delete"}, 2, `unknown flag: --delete`, ""},
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`, ""},
		{"missing local source", []string{"copy", "nope.bin", b.URL("in/")}, 4, `source: "nope.bin" does not exist`, ""},
		{"missing file on a peer agent", []string{"copy", b.URL("nope.bin"), "in/"}, 4, `failed: .*nope.bin`, ""},
		{"missing file on an FTP server", []string{"copy", vbase + "/nope.bin", "in/"}, 4, `failed: .*nope.bin`, v.Password},
		{"ls of a missing path", []string{"ls", "nope/"}, 4, `nope`, ""},
		{"unknown transfer", []string{"transfers", "get", "zzzz"}, 4, `no transfer "zzzz"`, ""},
		{"unique ID prefix", []string{"transfers", "get", id[:6]}, 0, ``, ""},
		{"agent not running", []string{"--agent", dead, "agent", "info"}, 3, `cannot reach agent at ` + dead, ""},
		{"--agent without a port", []string{"--agent", "127.0.0.1", "agent", "info"}, 3, `127\.0\.0\.1:7070`, "443"},
		{"--agent at an FTP port", []string{"--agent", a.FTP, "agent", "info"}, 3, `is this a Ferry agent\? ` + regexp.QuoteMeta(a.FTP) + ` speaks FTP`, "frame too large"},
		{"wrong password, 530 delayed 4 s (copy, auto mode)", []string{"copy", vbad + "/x.bin", "in/"}, 1, `failed: .*530`, "firewall"},
		{"rename onto a directory", []string{"copy", "out/a.bin", "ftp://" + testagent.User + ":" + testagent.Password + "@" + b.FTP + "/clash/"}, 1, `failed: store clash/a\.bin: the server refused to give the upload its name`, "ferry-part"},
	}
	var table strings.Builder
	table.WriteString("| mistake | exit | stderr |\n|---|---|---|\n")
	for _, row := range rows {
		t.Run(row.mistake, func(t *testing.T) {
			args := row.args
			if args[0] != "--agent" {
				args = append([]string{"--agent", a.GRPC}, args...)
			}
			r := ferryctl(t, args...)
			wantCode(t, r, row.code)
			line := strings.TrimSpace(r.stderr)
			if row.code != 0 {
				if n := strings.Count(r.stderr, "\n"); n != 1 || !strings.HasPrefix(r.stderr, "ferryctl: ") {
					t.Errorf("stderr should be one line \"ferryctl: <cause>\", got %q", r.stderr)
				}
				if strings.Contains(r.stdout, "failed") || strings.Contains(r.stdout, "ferryctl:") {
					t.Errorf("an error printed on stdout: %q", r.stdout)
				}
			}
			if !regexp.MustCompile(row.want).MatchString(line) {
				t.Errorf("stderr %q does not match %q", line, row.want)
			}
			if row.not != "" && strings.Contains(r.stderr+r.stdout, row.not) {
				t.Errorf("output holds %q: %q", row.not, r.stderr)
			}
			shown := strings.ReplaceAll(line, "|", `\|`)
			for _, s := range []string{a.GRPC, b.GRPC, a.FTP, b.FTP, v.Addr, dead} {
				shown = strings.ReplaceAll(shown, s, "127.0.0.1:PORT")
			}
			fmt.Fprintf(&table, "| %s | %d | `%s` |\n", row.mistake, r.code, shown)
		})
	}
	// doctor against the same slow 530: a login failure, not a firewall.
	r = ferryctl(t, "--agent", a.GRPC, "doctor", a.URL(""), vbad+"/")
	if !strings.Contains(r.stdout, "refused the login") || strings.Contains(r.stdout, "firewall") {
		t.Errorf("doctor on a slow 530 should say the login was refused, not blame a firewall:\n%s", r)
	}
	if path := os.Getenv("FERRY_EXIT_TABLE"); path != "" {
		_ = os.WriteFile(filepath.Clean(path), []byte(table.String()), 0o644)
	}
	t.Logf("exit-code table:\n%s", table.String())
}
