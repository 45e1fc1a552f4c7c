package faulttest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/testbed"
	"github.com/ferry-dev/ferry/internal/testftp"
)

const vsftpdBinary = testftp.Binary

// vsftpd is a vsftpd run in a bed host, anonymous with a writable /pub, that the test can kill
// (with its sessions) and start again on the same port. internal/testftp writes the
// configuration; the process is ours, so that a restart is possible.
type vsftpd struct {
	t    *testing.T
	host *testbed.Host
	dir  string
	port int
	conf string
	proc *testbed.Proc
}

// startVsftpd runs vsftpd in h on port of all its addresses, passive ports 30000-30009.
func startVsftpd(t *testing.T, h *testbed.Host, port int) *vsftpd {
	t.Helper()
	needVsftpd(t)
	dir := t.TempDir()
	must(t, os.Chmod(dir, 0o755))
	must(t, os.MkdirAll("/var/run/vsftpd/empty", 0o755))
	root := filepath.Join(dir, "root")
	must(t, os.MkdirAll(filepath.Join(root, "pub"), 0o755))
	must(t, os.Chmod(root, 0o755))
	must(t, os.Chmod(filepath.Join(root, "pub"), 0o777))
	must(t, os.WriteFile(filepath.Join(dir, "banned_emails"), []byte("nobody@ferry.invalid\n"), 0o644))
	conf := filepath.Join(dir, "vsftpd.conf")
	must(t, os.WriteFile(conf, []byte(testftp.Config(testftp.Options{
		ListenAddr: "0.0.0.0", Port: port, Dir: dir, PasvMin: 30000, PasvMax: 30009,
		Banner: "ferry-faulttest-vsftpd",
	})), 0o600))
	v := &vsftpd{t: t, host: h, dir: dir, port: port, conf: conf}
	v.start()
	t.Cleanup(func() {
		v.kill()
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "vsftpd.log")); err == nil {
				t.Logf("vsftpd log:\n%s", tail(string(b), 8000))
			}
		}
	})
	return v
}

// Pub is the local path of /pub.
func (v *vsftpd) Pub() string { return filepath.Join(v.dir, "root", "pub") }

// url is ftp://anonymous:pw@addr:port/pub/name.
func (v *vsftpd) url(addr, name string) string {
	return fmt.Sprintf("ftp://anonymous:ferry%%40ferry.invalid@%s/pub/%s", net.JoinHostPort(addr, strconv.Itoa(v.port)), name)
}

func (v *vsftpd) start() {
	v.t.Helper()
	v.proc = v.host.Start(v.t, vsftpdBinary, v.conf)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := v.ready(); err == nil {
			return
		} else if time.Now().After(deadline) {
			v.t.Fatalf("vsftpd not ready after 10 s: %v; output: %s", err, v.proc.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (v *vsftpd) ready() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := v.host.Dial(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(v.port)))
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "220 ferry-faulttest-vsftpd") {
		return fmt.Errorf("unexpected greeting %q", line)
	}
	return nil
}

// kill kills vsftpd and every session process below it (vsftpd puts sessions in sessions of
// their own, out of reach of a process-group kill), deepest first, by pid.
func (v *vsftpd) kill() {
	pid := v.proc.Pid()
	d := testftp.Descendants(pid)
	for i := len(d) - 1; i >= 0; i-- {
		_ = syscall.Kill(d[i], syscall.SIGKILL)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	select {
	case <-v.proc.Done():
	case <-time.After(10 * time.Second):
		v.t.Errorf("vsftpd (pid %d) still runs 10 s after SIGKILL", pid)
	}
}

// restart kills vsftpd with its sessions, waits down, and starts it again on the same port.
func (v *vsftpd) restart(down time.Duration) {
	v.t.Helper()
	v.kill()
	time.Sleep(down)
	v.start()
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
