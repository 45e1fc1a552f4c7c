// Package testftp starts a real vsftpd for tests.
//
// Login is anonymous (user "anonymous", any password but BadPassword):
// it needs no PAM, no system account beyond the "ftp" user that the vsftpd
// package creates, and does not modify /etc, so it is reliable as root in
// CI and in containers. Anonymous sessions are chrooted into Root, which
// vsftpd requires to be non-writable (Root is root-owned, 0755); the
// writable directory is Pub ("/pub", mode 0777) where the anonymous user may
// upload, create directories, rename and delete (anon_other_write_enable).
// Uploaded files are owned by the "ftp" user with mode 0644.
//
// vsftpd must run as root (it chroots). The tests skip only when
// /usr/sbin/vsftpd is absent.
package testftp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binary is the vsftpd executable.
const Binary = "/usr/sbin/vsftpd"

// secureChrootDir is vsftpd's secure_chroot_dir; it must exist.
const secureChrootDir = "/var/run/vsftpd/empty"

// Options configure the server. The zero value is a loopback server on a
// random free port with any passive port.
type Options struct {
	PasvMin, PasvMax int    // passive port range; 0 = any
	ListenAddr       string // IP to listen on; default 127.0.0.1 ("::1" etc. for IPv6, "0.0.0.0" in a namespace)
	PasvAddress      string // pasv_address: the IP vsftpd announces in PASV replies
	// Host is the IP the test process reaches the server on (Server.Addr and
	// readiness check). Default: ListenAddr, or 127.0.0.1 when ListenAddr is
	// unspecified (0.0.0.0). Set it when the server runs in a namespace.
	Host string
	// Port to listen on; 0 picks a free port of Host (retried on a race).
	Port int
	// Dir holds the server state: root/ (anon_root), banned_emails, the
	// log and the config. StartVsftpd sets it to a t.TempDir().
	Dir string
	// Banner is vsftpd's greeting text; StartVsftpd sets a unique one to
	// recognise its own server.
	Banner string
	// Extra lines appended to the config (e.g. "ssl_enable=YES").
	Extra []string
	// Dial, if set, opens the readiness check's connection: a server in a
	// network namespace is reached with the test bed's Host.Dial.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Server is a running vsftpd.
type Server struct {
	Addr        string // host:port to connect to
	Root        string // local path of the FTP root "/" (not writable by FTP)
	Pub         string // FTP path of the writable directory: "/pub"
	User        string // "anonymous"
	Password    string // accepted password
	BadPassword string // a password vsftpd rejects (530) for User
	ConfigPath  string
	LogPath     string // vsftpd protocol and transfer log

	cmd  *exec.Cmd
	done chan struct{}
	out  *syncBuffer
}

// badPassword is listed in banned_email_file: vsftpd refuses it with 530.
const badPassword = "wrong@ferry.invalid"

// Local returns the local path of the FTP path p.
func (s *Server) Local(p string) string {
	return filepath.Join(s.Root, filepath.FromSlash(p))
}

// Config returns the vsftpd configuration for opts. Dir and Port must be
// set (StartVsftpd does it).
func Config(opts Options) string {
	listen := opts.ListenAddr
	if listen == "" {
		listen = "127.0.0.1"
	}
	lines := []string{
		"background=NO",
		"listen_port=" + strconv.Itoa(opts.Port),
	}
	if ip, err := netip.ParseAddr(listen); err == nil && ip.Is6() && !ip.Is4In6() {
		lines = append(lines, "listen=NO", "listen_ipv6=YES", "listen_address6="+listen)
	} else {
		lines = append(lines, "listen=YES", "listen_ipv6=NO", "listen_address="+listen)
	}
	lines = append(lines,
		"anonymous_enable=YES",
		"local_enable=NO",
		"no_anon_password=NO",
		"anon_root="+filepath.Join(opts.Dir, "root"),
		"ftp_username=ftp",
		"write_enable=YES",
		"anon_upload_enable=YES",
		"anon_mkdir_write_enable=YES",
		"anon_other_write_enable=YES",
		"anon_world_readable_only=NO",
		"anon_umask=022",
		"deny_email_enable=YES",
		"banned_email_file="+filepath.Join(opts.Dir, "banned_emails"),
		"port_enable=YES",
		"pasv_enable=YES",
		"connect_from_port_20=NO",
		"seccomp_sandbox=NO",
		"secure_chroot_dir="+secureChrootDir,
		"force_dot_files=YES",
		"use_localtime=NO",
		"dirmessage_enable=NO",
		"hide_ids=NO",
		"delay_failed_login=0",
		"accept_timeout=20",
		"connect_timeout=20",
		"data_connection_timeout=60",
		"idle_session_timeout=120",
		"xferlog_enable=YES",
		"xferlog_std_format=NO",
		"log_ftp_protocol=YES",
		"vsftpd_log_file="+filepath.Join(opts.Dir, "vsftpd.log"),
	)
	if opts.Banner != "" {
		lines = append(lines, "ftpd_banner="+opts.Banner)
	}
	if opts.PasvMin > 0 {
		lines = append(lines, "pasv_min_port="+strconv.Itoa(opts.PasvMin))
	}
	if opts.PasvMax > 0 {
		lines = append(lines, "pasv_max_port="+strconv.Itoa(opts.PasvMax))
	}
	if opts.PasvAddress != "" {
		lines = append(lines, "pasv_address="+opts.PasvAddress)
	}
	lines = append(lines, opts.Extra...)
	return strings.Join(lines, "\n") + "\n"
}

// StartVsftpd starts vsftpd for the test; t.Cleanup stops it.
func StartVsftpd(t testing.TB, opts Options) *Server {
	t.Helper()
	return StartVsftpdCmd(t, opts, nil)
}

// StartVsftpdCmd is StartVsftpd with the command prefixed by wrap, e.g.
// []string{"ip", "netns", "exec", "ns1"}; then set opts.ListenAddr and
// opts.Host (and opts.Port, as a free port is picked in the caller's
// namespace).
func StartVsftpdCmd(t testing.TB, opts Options, wrap []string) *Server {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		t.Skipf("vsftpd is not installed (%v): apt-get install vsftpd", err)
	}
	if os.Geteuid() != 0 {
		t.Fatalf("testftp: vsftpd must be started as root (it chroots); running as uid %d", os.Geteuid())
	}
	if _, err := user.Lookup("ftp"); err != nil {
		t.Fatalf("testftp: the system user \"ftp\" (created by the vsftpd package) is missing: %v", err)
	}
	if err := os.MkdirAll(secureChrootDir, 0o755); err != nil {
		t.Fatalf("testftp: %v", err)
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	// vsftpd reads files here before and after dropping privileges.
	if err := os.Chmod(opts.Dir, 0o755); err != nil {
		t.Fatalf("testftp: %v", err)
	}
	root := filepath.Join(opts.Dir, "root")
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{root, 0o755}, {filepath.Join(root, "pub"), 0o777}} {
		if err := os.MkdirAll(d.path, d.mode); err != nil {
			t.Fatalf("testftp: %v", err)
		}
		if err := os.Chmod(d.path, d.mode); err != nil { // umask
			t.Fatalf("testftp: %v", err)
		}
	}
	if err := os.WriteFile(filepath.Join(opts.Dir, "banned_emails"), []byte(badPassword+"\n"), 0o644); err != nil {
		t.Fatalf("testftp: %v", err)
	}
	if opts.Banner == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		opts.Banner = "ferry-testftp-" + hex.EncodeToString(b[:])
	}
	host := opts.Host
	if host == "" {
		host = opts.ListenAddr
		if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
			host = "127.0.0.1"
		}
	}

	fixedPort := opts.Port != 0
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		if !fixedPort {
			port, err := freePort(host)
			if err != nil {
				t.Fatalf("testftp: %v", err)
			}
			opts.Port = port
		}
		s, err := start(opts, host, root, wrap)
		if err == nil {
			t.Cleanup(func() {
				s.stop()
				if t.Failed() {
					t.Logf("vsftpd output:\n%s", s.out.String())
					if b, err := os.ReadFile(s.LogPath); err == nil {
						t.Logf("vsftpd log (%s):\n%s", s.LogPath, tail(b, 8<<10))
					}
				}
			})
			return s
		}
		lastErr = err
		if fixedPort || !strings.Contains(err.Error(), "bind") {
			break
		}
	}
	t.Fatalf("testftp: starting vsftpd: %v", lastErr)
	return nil
}

func start(opts Options, host, root string, wrap []string) (*Server, error) {
	conf := filepath.Join(opts.Dir, "vsftpd.conf")
	if err := os.WriteFile(conf, []byte(Config(opts)), 0o600); err != nil {
		return nil, err
	}
	argv := append(append([]string{}, wrap...), Binary, conf)
	out := &syncBuffer{}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	// Own process group, killed at cleanup. (A PID namespace would be
	// tidier, but vsftpd misbehaves as PID 1: later sessions fail.)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &Server{
		Addr:        net.JoinHostPort(host, strconv.Itoa(opts.Port)),
		Root:        root,
		Pub:         "/pub",
		User:        "anonymous",
		Password:    "ferry@ferry.invalid",
		BadPassword: badPassword,
		ConfigPath:  conf,
		LogPath:     filepath.Join(opts.Dir, "vsftpd.log"),
		cmd:         cmd,
		done:        make(chan struct{}),
		out:         out,
	}
	go func() {
		_ = cmd.Wait()
		close(s.done)
	}()
	if err := s.waitReady(opts.Banner, 10*time.Second, opts.Dial); err != nil {
		s.stop()
		return nil, fmt.Errorf("%w; output: %s", err, strings.TrimSpace(out.String()))
	}
	return s, nil
}

// waitReady waits until the server greets with our banner.
func (s *Server) waitReady(banner string, timeout time.Duration, dial func(ctx context.Context, network, addr string) (net.Conn, error)) error {
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-s.done:
			return fmt.Errorf("vsftpd exited: %v", s.cmd.ProcessState)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := dial(ctx, "tcp", s.Addr)
		cancel()
		if err == nil {
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			line, rerr := bufio.NewReader(conn).ReadString('\n')
			conn.Close()
			if rerr == nil && strings.HasPrefix(line, "220 ") && strings.Contains(line, banner) {
				return nil
			}
			if rerr == nil {
				return fmt.Errorf("another server answers on %s: %q", s.Addr, strings.TrimSpace(line))
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vsftpd not ready on %s after %s: %v", s.Addr, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *Server) stop() {
	pid := s.cmd.Process.Pid
	// vsftpd runs each session in processes of their own (setsid), which
	// the process-group kill misses: kill them first, deepest first, while
	// their parents are alive to reap them.
	// Stop them all first: a session's privileged half that sees its other
	// half die between two kills writes "500 OOPS" to the client.
	d := Descendants(pid)
	for i := len(d) - 1; i >= 0; i-- {
		_ = syscall.Kill(d[i], syscall.SIGSTOP)
	}
	for i := len(d) - 1; i >= 0; i-- {
		_ = syscall.Kill(d[i], syscall.SIGKILL)
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	<-s.done
}

// Descendants lists the processes below pid, read from /proc, parents first.
func Descendants(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may contain spaces and ')'.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(f[1]); err == nil {
			children[ppid] = append(children[ppid], p)
		}
	}
	var out []int
	for queue := children[pid]; len(queue) > 0; queue = queue[1:] {
		out = append(out, queue[0])
		queue = append(queue, children[queue[0]]...)
	}
	return out
}

func freePort(host string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
