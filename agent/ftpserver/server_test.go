package ftpserver

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestNewValidation(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		mut   func(*Config)
		field string
	}{
		{"no listen", func(c *Config) { c.Listen = "" }, "Listen"},
		{"bad listen", func(c *Config) { c.Listen = "127.0.0.1:99999" }, "Listen"},
		{"no root", func(c *Config) { c.Root = "" }, "Root"},
		{"missing root", func(c *Config) { c.Root = filepath.Join(dir, "nope") }, "Root"},
		{"root is a file", func(c *Config) { c.Root = file }, "Root"},
		{"ports reversed", func(c *Config) { c.PassivePorts = PortRange{50100, 50000} }, "PassivePorts"},
		{"ports lo zero", func(c *Config) { c.PassivePorts = PortRange{0, 50000} }, "PassivePorts"},
		{"ports too high", func(c *Config) { c.PassivePorts = PortRange{65000, 65536} }, "PassivePorts"},
		{"public host name", func(c *Config) { c.PublicHost = "ftp.example.com" }, "PublicHost"},
		{"public host v6", func(c *Config) { c.PublicHost = "2001:db8::1" }, "PublicHost"},
		{"override no prefix", func(c *Config) { c.HostOverrides = []HostOverride{{Host: "10.0.0.1"}} }, "HostOverrides[0].Network"},
		{"override bad host", func(c *Config) {
			c.HostOverrides = []HostOverride{{Network: netip.MustParsePrefix("10.0.0.0/8"), Host: "10.0.0.1"}, {Network: netip.MustParsePrefix("::/0"), Host: "::1"}}
		}, "HostOverrides[1].Host"},
		{"user no name", func(c *Config) { c.Users = []User{{Password: "x"}} }, "Users[0].Name"},
		{"user no password", func(c *Config) { c.Users = []User{{Name: "bob"}} }, "Users[0].Password"},
		{"user anonymous", func(c *Config) { c.Users = []User{{Name: "Anonymous", Password: "x"}} }, "Users[0].Name"},
		{"user dup", func(c *Config) { c.Users = []User{{"bob", "x"}, {"bob", "y"}} }, "Users[1].Name"},
		{"negative idle", func(c *Config) { c.IdleTimeout = -time.Second }, "IdleTimeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Listen: "127.0.0.1:0", Root: dir}
			tc.mut(&cfg)
			s, err := New(cfg)
			if err == nil {
				s.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), "Config."+tc.field+":") {
				t.Fatalf("error %q does not name Config.%s", err, tc.field)
			}
		})
	}
	// The listener is bound by New; a second server on the same port fails.
	ts := startServer(t, nil)
	if _, err := New(Config{Listen: ts.Addr().String(), Root: dir}); err == nil || !strings.Contains(err.Error(), "Config.Listen") {
		t.Fatalf("New on a taken port: %v", err)
	}
}

func TestCloseStopsSessions(t *testing.T) {
	root := t.TempDir()
	big := filepath.Join(root, "huge.bin")
	if err := os.WriteFile(big, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, 1<<30); err != nil { // sparse: cheap
		t.Fatal(err)
	}
	s, err := New(Config{Listen: "127.0.0.1:0", Root: root, Users: []User{{testUser, testPass}}})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	ts := &testServer{Server: s, root: root}

	idle := dialRaw(t, ts)
	if code := idle.login(testUser, testPass); code != 230 {
		t.Fatal(code)
	}
	busy := dialRaw(t, ts)
	if code := busy.login(testUser, testPass); code != 230 {
		t.Fatal(code)
	}
	data := busy.openData()
	defer data.Close()
	busy.expect(150, "RETR /huge.bin")
	if _, err := io.ReadFull(data, make([]byte, 1<<16)); err != nil { // transfer is running
		t.Fatal(err)
	}

	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(start); d > closeGrace {
		t.Errorf("Close took %v", d)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	if err := s.Serve(); err != nil {
		t.Errorf("Serve on a closed server: %v", err)
	}
	// Both control connections and the data connection are gone.
	for name, c := range map[string]net.Conn{"idle": idle.conn, "busy": busy.conn, "data": data} {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := io.Copy(io.Discard, c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("%s connection still open after Close (%d bytes)", name, n)
		}
		if name == "data" && n >= 1<<30 {
			t.Errorf("transfer completed despite Close")
		}
	}
	if _, err := net.DialTimeout("tcp", s.Addr().String(), time.Second); err == nil {
		t.Errorf("listener still accepting")
	}
	if _, _, err := s.IssueCredential(Scope{Path: "x", Access: AccessRead}); err == nil {
		t.Errorf("IssueCredential on a closed server succeeded")
	}
}

func TestIdleTimeout(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.IdleTimeout = 500 * time.Millisecond })
	f := dialRaw(t, ts)
	if code := f.login(testUser, testPass); code != 230 {
		t.Fatal(code)
	}
	start := time.Now()
	code, msg := f.read()
	if code != 421 {
		t.Fatalf("after idling: %d %q", code, msg)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("idle timeout took %v", d)
	}
}

func TestPASVHostSelection(t *testing.T) {
	tcp := func(s string) net.Addr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }
	ovs := []HostOverride{
		{Network: netip.MustParsePrefix("10.0.0.0/8"), Host: "192.0.2.10"},
		{Network: netip.MustParsePrefix("10.1.0.0/16"), Host: "192.0.2.11"},
		{Network: netip.MustParsePrefix("0.0.0.0/0"), Host: "192.0.2.99"},
		{Network: netip.MustParsePrefix("2001:db8::/32"), Host: "192.0.2.6"},
	}
	tests := []struct {
		name          string
		overrides     []HostOverride
		public        string
		remote, local string
		want          string
		wantErr       bool
	}{
		{"local address by default", nil, "", "127.0.0.1:5000", "127.0.0.1:21", "127.0.0.1", false},
		{"public host", nil, "198.51.100.7", "127.0.0.1:5000", "127.0.0.1:21", "198.51.100.7", false},
		{"override beats public", ovs[:1], "198.51.100.7", "10.2.3.4:5000", "10.0.0.1:21", "192.0.2.10", false},
		{"no override match", ovs[:2], "198.51.100.7", "172.16.0.1:5000", "10.0.0.1:21", "198.51.100.7", false},
		{"most specific override", ovs, "", "10.1.2.3:5000", "10.0.0.1:21", "192.0.2.11", false},
		{"catch-all override", ovs, "", "172.16.0.1:5000", "10.0.0.1:21", "192.0.2.99", false},
		{"v4-mapped client", ovs[:2], "", "[::ffff:10.1.2.3]:5000", "[::ffff:10.0.0.1]:21", "192.0.2.11", false},
		{"v4-mapped local", nil, "", "[::ffff:10.1.2.3]:5000", "[::ffff:10.0.0.1]:21", "10.0.0.1", false},
		{"v6 client with v6 override", ovs, "", "[2001:db8::5]:5000", "[2001:db8::1]:21", "192.0.2.6", false},
		{"v6 client with public", nil, "198.51.100.7", "[2001:db8::5]:5000", "[2001:db8::1]:21", "198.51.100.7", false},
		{"v6 client, nothing to announce", nil, "", "[2001:db8::5]:5000", "[2001:db8::1]:21", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := pasvHost(tc.overrides, tc.public, tcp(tc.remote), tcp(tc.local))
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("pasvHost = %q, %v; want %q (err %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

var pasvRe = regexp.MustCompile(`\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)`)

func pasvReply(t *testing.T, f *rawFTP) (string, int) {
	t.Helper()
	m := pasvRe.FindStringSubmatch(f.expect(227, "PASV"))
	if m == nil {
		t.Fatal("bad PASV reply")
	}
	p1, _ := strconv.Atoi(m[5])
	p2, _ := strconv.Atoi(m[6])
	return strings.Join(m[1:5], "."), p1*256 + p2
}

func TestPASVReplyHost(t *testing.T) {
	loop := netip.MustParsePrefix("127.0.0.0/8")
	tests := []struct {
		name string
		mut  func(*Config)
		want string
	}{
		{"control local address", nil, "127.0.0.1"},
		{"PublicHost", func(c *Config) { c.PublicHost = "198.51.100.7" }, "198.51.100.7"},
		{"override for loopback clients", func(c *Config) {
			c.PublicHost = "198.51.100.7"
			c.HostOverrides = []HostOverride{{Network: netip.MustParsePrefix("10.0.0.0/8"), Host: "10.0.0.1"}, {Network: loop, Host: "127.0.0.2"}}
		}, "127.0.0.2"},
		{"override not matching", func(c *Config) {
			c.PublicHost = "198.51.100.7"
			c.HostOverrides = []HostOverride{{Network: netip.MustParsePrefix("10.0.0.0/8"), Host: "10.0.0.1"}}
		}, "198.51.100.7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, tc.mut)
			f := dialRaw(t, ts)
			if code := f.login(testUser, testPass); code != 230 {
				t.Fatal(code)
			}
			if host, _ := pasvReply(t, f); host != tc.want {
				t.Fatalf("PASV announces %s, want %s", host, tc.want)
			}
		})
	}
}

// freePortRange finds n consecutive free ports below the Linux ephemeral
// range (so clients' own ports do not collide with it).
func freePortRange(t *testing.T, n int) PortRange {
	t.Helper()
	for range 50 {
		lo := 20000 + mrand.IntN(12000)
		var ls []net.Listener
		for p := lo; p < lo+n; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf(":%d", p))
			if err != nil {
				break
			}
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Close()
		}
		if len(ls) == n {
			return PortRange{Lo: lo, Hi: lo + n - 1}
		}
	}
	t.Fatal("no free port range")
	return PortRange{}
}

func TestPassivePortRange(t *testing.T) {
	pr := freePortRange(t, 8)
	ts := startServer(t, func(c *Config) { c.PassivePorts = pr })
	wantSum := writeRandom(t, ts.root, "r.bin", 500000)
	f := dialRaw(t, ts)
	if code := f.login(testUser, testPass); code != 230 {
		t.Fatal(code)
	}
	for range 5 {
		if _, port := pasvReply(t, f); port < pr.Lo || port > pr.Hi {
			t.Fatalf("PASV port %d outside %d-%d", port, pr.Lo, pr.Hi)
		}
		m := epsvRe.FindStringSubmatch(f.expect(229, "EPSV"))
		if port, _ := strconv.Atoi(m[1]); port < pr.Lo || port > pr.Hi {
			t.Fatalf("EPSV port %d outside %d-%d", port, pr.Lo, pr.Hi)
		}
	}
	if data, code := f.retr("/r.bin"); code != 226 || sha256Hex(data) != wantSum {
		t.Fatalf("RETR over ranged passive port: %d", code)
	}
	if tool := "curl"; hasTool(tool) {
		local := filepath.Join(t.TempDir(), "r.bin")
		runTool(t, tool, append(curlArgs(ts, "passive"), "--disable-epsv", "--output", local, ts.url("/r.bin")))
		if fileSHA256(t, local) != wantSum {
			t.Fatal("curl download over ranged PASV port: sha256 mismatch")
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestNoPasswordsInLogs(t *testing.T) {
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ts := startServer(t, func(c *Config) { c.Logger = logger })
	u, p, err := ts.IssueCredential(Scope{Path: "x", Access: AccessRead})
	if err != nil {
		t.Fatal(err)
	}
	dialRaw(t, ts).login(testUser, testPass)
	dialRaw(t, ts).login(testUser, "wrong-password-123")
	dialRaw(t, ts).login(u, p)
	dialRaw(t, ts).login(u, p) // consumed: refused
	ts.Close()
	out := logs.String()
	for _, secret := range []string{testPass, "wrong-password-123", p} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains a password:\n%s", out)
		}
	}
	for _, want := range []string{"ftp login", "ftp login refused", "ftp credential issued", u} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func hasTool(bin string) bool {
	_, err := execLookPath(bin)
	return err == nil
}

func selfSignedTLS(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "ferry-test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		MinVersion:   tls.VersionTLS12,
	}
}

func TestExplicitTLS(t *testing.T) {
	// Without TLS configured, AUTH TLS is neither offered nor accepted.
	plain := startServer(t, nil)
	f := dialRaw(t, plain)
	if feat := f.expect(211, "FEAT"); strings.Contains(feat, "AUTH TLS") {
		t.Errorf("FEAT offers AUTH TLS without a TLS config")
	}
	if code, _ := f.cmd("AUTH TLS"); code/100 == 2 {
		t.Errorf("AUTH TLS accepted without a TLS config: %d", code)
	}

	ts := startServer(t, func(c *Config) { c.TLS = selfSignedTLS(t) })
	wantSum := writeRandom(t, ts.root, "s.bin", 1<<20)
	// curl 7.88 cannot do active-mode FTPS (curl/curl#10666, a 7.87/7.88
	// regression), so curl covers passive and lftp/ftplib cover both.
	tlsCmds := regexp.MustCompile(`(?:> |---> |\*cmd\* ')(AUTH|PROT P)`)
	for _, mode := range []string{"passive", "active"} {
		type run struct {
			name string
			bin  string
			args func(op, local, remote string) []string
		}
		runs := []run{
			{"lftp", "lftp", func(op, local, remote string) []string {
				c := fmt.Sprintf("get %s -o %s", remote, local)
				if op == "put" {
					c = fmt.Sprintf("put %s -o %s", local, remote)
				}
				args := lftpArgs(ts, mode, "set ftp:ssl-force yes; set ftp:ssl-protect-data yes; set ssl:verify-certificate no; "+c)
				// ftp:ssl-allow must be on for FTPS
				args[len(args)-1] = strings.Replace(args[len(args)-1], "set ftp:ssl-allow no", "set ftp:ssl-allow yes", 1)
				return args
			}},
			{"python-ftplib", "/usr/bin/python3", func(op, local, remote string) []string {
				return []string{filepath.Join("testdata", "ftpclient.py"), "-v", "--tls", ts.host, strconv.Itoa(ts.port),
					testUser, testPass, mode, op, remote, local}
			}},
		}
		if mode == "passive" {
			runs = append(runs, run{"curl", "curl", func(op, local, remote string) []string {
				args := append(curlArgs(ts, mode), "--ssl-reqd", "--insecure")
				if op == "put" {
					return append(args, "--upload-file", local, ts.url(remote))
				}
				return append(args, "--output", local, ts.url(remote))
			}})
		}
		for _, r := range runs {
			t.Run(r.name+"/"+mode, func(t *testing.T) {
				requireTool(t, r.bin)
				local := filepath.Join(t.TempDir(), "s.bin")
				out := runTool(t, r.bin, r.args("get", local, "/s.bin"))
				if got := tlsCmds.FindAllStringSubmatch(out, -1); len(got) < 2 {
					t.Fatalf("client did not use AUTH + PROT P:\n%s", out)
				}
				for _, tool := range ftpTools {
					if tool.name == r.name {
						checkMode(t, tool, mode, out)
					}
				}
				if fileSHA256(t, local) != wantSum {
					t.Fatal("sha256 mismatch over FTPS")
				}
				remote := fmt.Sprintf("/up-%s-%s.bin", r.name, mode)
				runTool(t, r.bin, r.args("put", local, remote))
				if fileSHA256(t, filepath.Join(ts.root, remote)) != wantSum {
					t.Fatal("sha256 mismatch after FTPS upload")
				}
			})
		}
	}
}
