package ftpserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"math/big"
	"net"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/testftp"
)

// The conformance suite: reply codes and texts that strict clients rely on
// (RFC 959, RFC 2389, RFC 2428, RFC 3659), one command per case, run
// against Ferry's server and against vsftpd to show that both answer
// alike. Each case gets a fresh, logged-in control connection (unless it
// tests the login itself) and a fresh directory to work in.

// conformTarget is a server under test.
type conformTarget struct {
	name    string
	addr    string
	user    string
	pass    string
	badPass string
	pub     string                // writable FTP directory
	tls     bool                  // explicit FTPS (AUTH TLS, PROT P)
	local   func(p string) string // local path of FTP path p
}

func conformTargets(t *testing.T) []*conformTarget {
	t.Helper()
	ts := startServer(t, nil)
	if err := os.Mkdir(filepath.Join(ts.root, "pub"), 0o755); err != nil {
		t.Fatal(err)
	}
	ferry := &conformTarget{
		name: "ferry", addr: ts.Addr().String(), user: testUser, pass: testPass, badPass: "wrong-" + testPass,
		pub:   "/pub",
		local: func(p string) string { return filepath.Join(ts.root, filepath.FromSlash(p)) },
	}
	vs := testftp.StartVsftpd(t, testftp.Options{})
	vsftpd := &conformTarget{
		name: "vsftpd", addr: vs.Addr, user: vs.User, pass: vs.Password, badPass: vs.BadPassword,
		pub: vs.Pub, local: vs.Local,
	}
	return []*conformTarget{ferry, vsftpd}
}

// dialTarget opens a control connection and reads the greeting.
func dialTarget(t *testing.T, tg *conformTarget) *rawFTP {
	t.Helper()
	c, err := net.DialTimeout("tcp", tg.addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	_ = c.SetDeadline(time.Now().Add(rawTimeout))
	f := &rawFTP{t: t, conn: c, tp: textproto.NewConn(c)}
	t.Cleanup(func() { _ = f.tp.Close() })
	if code, msg := f.read(); code != 220 {
		t.Fatalf("greeting = %d %q", code, msg)
	}
	return f
}

func (f *rawFTP) mustLogin(tg *conformTarget) {
	f.t.Helper()
	if code := f.login(tg.user, tg.pass); code != 230 {
		f.t.Fatalf("login: %d", code)
	}
}

// want sends one command and checks the reply code (exact when want >= 100,
// else the first digit) and, if re is not nil, the reply text.
func (f *rawFTP) want(want int, re *regexp.Regexp, command string) string {
	f.t.Helper()
	code, msg := f.cmd("%s", command)
	ok := code == want
	if want < 10 {
		ok = code/100 == want
	}
	if !ok {
		f.t.Fatalf("%s: got %d %q, want %d", command, code, msg, want)
	}
	if re != nil && !re.MatchString(msg) {
		f.t.Fatalf("%s: reply text %q does not match %s", command, msg, re)
	}
	return msg
}

// parse257 extracts the quoted path of a 257 reply as RFC 959 appendix II
// has it: first thing in the text, embedded quotes doubled. "" if absent.
func parse257(msg string) string {
	if !strings.HasPrefix(msg, `"`) {
		return ""
	}
	var b strings.Builder
	for i := 1; i < len(msg); i++ {
		if msg[i] == '"' {
			if i+1 < len(msg) && msg[i+1] == '"' {
				b.WriteByte('"')
				i++
				continue
			}
			return b.String()
		}
		b.WriteByte(msg[i])
	}
	return ""
}

type conformCase struct {
	name    string
	noLogin bool
	run     func(t *testing.T, tg *conformTarget, f *rawFTP, dir string)
}

func mkdirLocal(t *testing.T, tg *conformTarget, p string) {
	t.Helper()
	if err := os.Mkdir(tg.local(p), 0o777); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(tg.local(p), 0o777) // vsftpd's anonymous user must write here
}

func writeLocal(t *testing.T, tg *conformTarget, p, data string) {
	t.Helper()
	if err := os.WriteFile(tg.local(p), []byte(data), 0o666); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(tg.local(p), 0o666)
}

var (
	reMDTM    = regexp.MustCompile(`^\d{14}(\.\d+)?$`)
	reEPSV    = regexp.MustCompile(`\(\|\|\|\d+\|\)`)
	rePWDRoot = regexp.MustCompile(`^"/"`)
)

var conformCases = []conformCase{
	{name: "MKD reply starts with the quoted path", run: func(t *testing.T, tg *conformTarget, f *rawFTP, dir string) {
		msg := f.want(257, nil, "MKD "+dir+"/made")
		if got := parse257(msg); got != dir+"/made" {
			t.Fatalf("MKD reply %q: quoted path %q, want %q", msg, got, dir+"/made")
		}
		if fi, err := os.Stat(tg.local(dir + "/made")); err != nil || !fi.IsDir() {
			t.Fatalf("directory not created: %v", err)
		}
	}},
	{name: "MKD relative name replies with the absolute path", run: func(t *testing.T, tg *conformTarget, f *rawFTP, dir string) {
		f.want(250, nil, "CWD "+dir)
		msg := f.want(257, nil, "MKD rel")
		if got := parse257(msg); got != dir+"/rel" {
			t.Fatalf("MKD reply %q: quoted path %q, want %q", msg, got, dir+"/rel")
		}
	}},
	{name: "MKD doubles embedded quotes", run: func(t *testing.T, tg *conformTarget, f *rawFTP, dir string) {
		msg := f.want(257, nil, "MKD "+dir+`/say "hi"`)
		if got := parse257(msg); got != dir+`/say "hi"` {
			t.Fatalf("MKD reply %q: quoted path %q", msg, got)
		}
	}},
	{name: "PWD reply starts with the quoted path", run: func(t *testing.T, tg *conformTarget, f *rawFTP, dir string) {
		f.want(257, rePWDRoot, "PWD")
	}},
	{name: "failed login answers 530 and allows a retry", noLogin: true, run: func(t *testing.T, tg *conformTarget, f *rawFTP, dir string) {
		f.want(331, nil, "USER "+tg.user)
		f.want(530, nil, "PASS "+tg.badPass)
		f.want(331, nil, "USER "+tg.user)
		f.want(230, nil, "PASS "+tg.pass)
		f.want(257, nil, "PWD")
	}},
	{name: "commands before login get 530", noLogin: true, run: func(t *testing.T, tg *conformTarget, f *rawFTP, dir string) {
		for _, c := range []string{"PWD", "STRU F", "ALLO 10", "RNTO x", "EPSV 2", "APPE x", "MKD x"} {
			f.want(530, nil, c)
		}
	}},
	{name: "PASS without USER gets 503", noLogin: true, run: func(t *testing.T, tg *conformTarget, f *rawFTP, dir string) {
		f.want(503, nil, "PASS "+tg.pass)
	}},
	{name: "STRU F is accepted", run: func(t *testing.T, tg *conformTarget, f *rawFTP, dir string) {
		f.want(200, nil, "STRU F")
	}},
	{name: "STRU R is refused with 504", run: func(t *testing.T, tg *conformTarget, f *rawFTP, dir string) {
		f.want(504, nil, "STRU R")
	}},
	{name: "MODE S is accepted", run: func(t *testing.T, tg *conformTarget, f *rawFTP, dir string) {
		f.want(200, nil, "MODE S")
	}},
	{name: "MODE B is refused with 504", run: func(t *testing.T, tg *conformTarget, f *rawFTP, dir string) {
		f.want(504, nil, "MODE B")
	}},
	{name: "ALLO size is a no-op", run: func(t *testing.T, tg *conformTarget, f *rawFTP, dir string) {
		f.want(2, nil, "ALLO 1048576")
	}},
	{name: "ALLO x is a no-op", run: func(t *testing.T, tg *conformTarget, f *rawFTP, dir string) {
		f.want(2, nil, "ALLO x")
	}},
	{name: "DELE of a directory gets 550", run: func(t *testing.T, tg *conformTarget, f *rawFTP, dir string) {
		mkdirLocal(t, tg, dir+"/d")
		f.want(550, nil, "DELE "+dir+"/d")
		if _, err := os.Stat(tg.local(dir + "/d")); err != nil {
			t.Fatalf("directory removed by DELE: %v", err)
		}
	}},
	{name: "DELE of a file", run: func(t *testing.T, tg *conformTarget, f *rawFTP, dir string) {
		writeLocal(t, tg, dir+"/f", "data")
		f.want(250, nil, "DELE "+dir+"/f")
		if _, err := os.Stat(tg.local(dir + "/f")); !os.IsNotExist(err) {
			t.Fatalf("file still there: %v", err)
		}
	}},
	{name: "MDTM of a directory gets 550", run: func(t *testing.T, tg *conformTarget, f *rawFTP, dir string) {
		mkdirLocal(t, tg, dir+"/d")
		f.want(550, nil, "MDTM "+dir+"/d")
	}},
	{name: "MDTM of a file", run: func(t *testing.T, tg *conformTarget, f *rawFTP, dir string) {
		writeLocal(t, tg, dir+"/f", "data")
		f.want(213, reMDTM, "MDTM "+dir+"/f")
	}},
	{name: "SIZE of a directory gets 550", run: func(t *testing.T, tg *conformTarget, f *rawFTP, dir string) {
		f.want(200, nil, "TYPE I")
		mkdirLocal(t, tg, dir+"/d")
		f.want(550, nil, "SIZE "+dir+"/d")
	}},
	{name: "ABOR with no transfer gets 225", run: func(t *testing.T, tg *conformTarget, f *rawFTP, dir string) {
		f.want(225, nil, "ABOR")
	}},
	{name: "ABOR while a passive listener waits gets 225", run: func(t *testing.T, tg *conformTarget, f *rawFTP, dir string) {
		f.want(229, reEPSV, "EPSV")
		f.want(225, nil, "ABOR")
		f.want(425, nil, "LIST "+dir) // the listener is gone
	}},
	{name: "EPSV 2 on IPv4 gets 522", run: func(t *testing.T, tg *conformTarget, f *rawFTP, dir string) {
		f.want(522, nil, "EPSV 2")
	}},
	{name: "EPSV 1 on IPv4", run: func(t *testing.T, tg *conformTarget, f *rawFTP, dir string) {
		f.want(229, reEPSV, "EPSV 1")
	}},
	{name: "EPSV ALL then PASV is refused", run: func(t *testing.T, tg *conformTarget, f *rawFTP, dir string) {
		f.want(200, nil, "EPSV ALL")
		f.want(5, nil, "PASV")
		f.want(229, reEPSV, "EPSV")
	}},
	{name: "RNTO without RNFR gets 503", run: func(t *testing.T, tg *conformTarget, f *rawFTP, dir string) {
		writeLocal(t, tg, dir+"/a", "data")
		f.want(503, nil, "RNTO "+dir+"/b")
	}},
	{name: "RNFR stays pending over other commands until one RNTO", run: func(t *testing.T, tg *conformTarget, f *rawFTP, dir string) {
		writeLocal(t, tg, dir+"/a", "data")
		f.want(350, nil, "RNFR "+dir+"/a")
		f.want(200, nil, "NOOP")
		f.want(250, nil, "RNTO "+dir+"/b")
		f.want(503, nil, "RNTO "+dir+"/c")
		if _, err := os.Stat(tg.local(dir + "/b")); err != nil {
			t.Fatalf("not renamed: %v", err)
		}
	}},
	{name: "RNTO after a refused RNFR gets 503", run: func(t *testing.T, tg *conformTarget, f *rawFTP, dir string) {
		writeLocal(t, tg, dir+"/a", "data")
		f.want(350, nil, "RNFR "+dir+"/a")
		f.want(5, nil, "RNTO "+dir+"/no/such/dir/b")
		f.want(550, nil, "RNFR "+dir+"/missing")
		f.want(503, nil, "RNTO "+dir+"/c")
		if _, err := os.Stat(tg.local(dir + "/a")); err != nil {
			t.Fatalf("renamed anyway: %v", err)
		}
	}},
	{name: "RNFR then RNTO renames", run: func(t *testing.T, tg *conformTarget, f *rawFTP, dir string) {
		writeLocal(t, tg, dir+"/a", "data")
		f.want(350, nil, "RNFR "+dir+"/a")
		f.want(250, nil, "RNTO "+dir+"/b")
		if _, err := os.Stat(tg.local(dir + "/b")); err != nil {
			t.Fatalf("not renamed: %v", err)
		}
	}},
	{name: "APPE before PORT/PASV gets 425", run: func(t *testing.T, tg *conformTarget, f *rawFTP, dir string) {
		f.want(425, nil, "APPE "+dir+"/new")
		if _, err := os.Stat(tg.local(dir + "/new")); !os.IsNotExist(err) {
			t.Fatalf("APPE without a data connection created the file: %v", err)
		}
	}},
	{name: "STOU before PORT/PASV gets 425", run: func(t *testing.T, tg *conformTarget, f *rawFTP, dir string) {
		f.want(250, nil, "CWD "+dir)
		f.want(425, nil, "STOU")
	}},
	{name: "STOR before PORT/PASV gets 425 and keeps the file", run: func(t *testing.T, tg *conformTarget, f *rawFTP, dir string) {
		writeLocal(t, tg, dir+"/keep", "keep me")
		f.want(425, nil, "STOR "+dir+"/keep")
		if b, err := os.ReadFile(tg.local(dir + "/keep")); err != nil || string(b) != "keep me" {
			t.Fatalf("file changed: %q %v", b, err)
		}
	}},
	{name: "RETR before PORT/PASV gets 425", run: func(t *testing.T, tg *conformTarget, f *rawFTP, dir string) {
		writeLocal(t, tg, dir+"/f", "data")
		f.want(425, nil, "RETR "+dir+"/f")
	}},
	{name: "LIST before PORT/PASV gets 425", run: func(t *testing.T, tg *conformTarget, f *rawFTP, dir string) {
		f.want(425, nil, "LIST "+dir)
	}},
	{name: "a transfer uses up the data connection", run: func(t *testing.T, tg *conformTarget, f *rawFTP, dir string) {
		writeLocal(t, tg, dir+"/f", "data")
		f.want(200, nil, "TYPE I")
		if b, code := f.retr(dir + "/f"); code != 226 || string(b) != "data" {
			t.Fatalf("RETR: %d %q", code, b)
		}
		f.want(425, nil, "RETR "+dir+"/f")
	}},
	{name: "APPE after EPSV appends", run: func(t *testing.T, tg *conformTarget, f *rawFTP, dir string) {
		writeLocal(t, tg, dir+"/f", "abc")
		f.want(200, nil, "TYPE I")
		d := f.openData()
		f.want(150, nil, "APPE "+dir+"/f")
		_, _ = d.Write([]byte("def"))
		d.Close()
		if code, msg := f.read(); code != 226 {
			t.Fatalf("APPE: %d %q", code, msg)
		}
		if b, _ := os.ReadFile(tg.local(dir + "/f")); string(b) != "abcdef" {
			t.Fatalf("content %q", b)
		}
	}},
	{name: "FEAT lists features with a leading space", run: func(t *testing.T, tg *conformTarget, f *rawFTP, dir string) {
		msg := f.want(211, nil, "FEAT")
		lines := strings.Split(msg, "\n")
		found := map[string]bool{}
		for _, l := range lines[1:] {
			if !strings.HasPrefix(l, " ") {
				continue
			}
			found[strings.Fields(l)[0]] = true
		}
		for _, feat := range []string{"EPRT", "EPSV", "MDTM", "REST", "SIZE"} {
			if !found[feat] {
				t.Errorf("FEAT lacks %s: %q", feat, msg)
			}
		}
	}},
	{name: "unknown command gets 500", run: func(t *testing.T, tg *conformTarget, f *rawFTP, dir string) {
		f.want(500, nil, "XYZZY")
	}},
	{name: "QUIT gets 221", run: func(t *testing.T, tg *conformTarget, f *rawFTP, dir string) {
		f.want(221, nil, "QUIT")
	}},
}

var caseDirRe = regexp.MustCompile(`[^a-zA-Z0-9]+`)

func TestConformance(t *testing.T) {
	for _, tg := range conformTargets(t) {
		t.Run(tg.name, func(t *testing.T) {
			for i, c := range conformCases {
				t.Run(c.name, func(t *testing.T) {
					dir := tg.pub + "/c" + strconv.Itoa(i) + "-" + strings.Trim(caseDirRe.ReplaceAllString(c.name, "-"), "-")
					mkdirLocal(t, tg, dir)
					f := dialTarget(t, tg)
					if !c.noLogin {
						f.mustLogin(tg)
					}
					c.run(t, tg, f, dir)
				})
			}
		})
	}
}

// TestConformancePython runs the strict client of the issue, Python's
// ftplib, through one session on each server, and on Ferry over explicit
// FTPS too (AUTH TLS, PROT P: the filter must work above TLS).
func TestConformancePython(t *testing.T) {
	const py = "/usr/bin/python3"
	requireTool(t, py)
	tls := startServer(t, func(c *Config) { c.TLS = testTLSConfig(t) })
	if err := os.Mkdir(filepath.Join(tls.root, "pub"), 0o755); err != nil {
		t.Fatal(err)
	}
	targets := append(conformTargets(t), &conformTarget{
		name: "ferry-ftps", addr: tls.Addr().String(), user: testUser, pass: testPass, badPass: "wrong-" + testPass,
		pub: "/pub", tls: true,
	})
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			host, port, _ := net.SplitHostPort(tg.addr)
			args := []string{filepath.Join("testdata", "conform.py"), host, port, tg.user, tg.pass, tg.badPass, tg.pub}
			if tg.tls {
				args = append([]string{args[0], "--tls"}, args[1:]...)
			}
			ctx, cancel := context.WithTimeout(context.Background(), clientDeadline)
			defer cancel()
			cmd := exec.CommandContext(ctx, py, args...)
			cmd.WaitDelay = 5 * time.Second
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("conform.py: %v\n%s", err, out)
			}
			var got map[string]string
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("conform.py output %q: %v", out, err)
			}
			t.Logf("%s", out)
			pub := tg.pub
			want := map[string]*regexp.Regexp{
				"login-bad":    regexp.MustCompile(`^error: 530`),
				"login":        regexp.MustCompile(`^230`),
				"pwd":          regexp.MustCompile(`^/$`),
				"mkd":          regexp.MustCompile(`^` + regexp.QuoteMeta(pub+"/py") + `$`),
				"cwd":          regexp.MustCompile(`^250`),
				"mkd-relative": regexp.MustCompile(`^` + regexp.QuoteMeta(pub+"/py/sub") + `$`),
				"stru":         regexp.MustCompile(`^200`),
				"mode":         regexp.MustCompile(`^200`),
				"allo":         regexp.MustCompile(`^20[02]`),
				"type":         regexp.MustCompile(`^200`),
				"stor":         regexp.MustCompile(`^226`),
				"appe":         regexp.MustCompile(`^226`),
				"size":         regexp.MustCompile(`^1024$`),
				"mdtm-file":    regexp.MustCompile(`^213 \d{14}`),
				"mdtm-dir":     regexp.MustCompile(`^error: 550`),
				"dele-dir":     regexp.MustCompile(`^error: 550`),
				"rename":       regexp.MustCompile(`^250`),
				"rnto-alone":   regexp.MustCompile(`^error: 503`),
				"nlst":         regexp.MustCompile(`^(g\.bin,sub|sub,g\.bin)$`),
				"abort":        regexp.MustCompile(`^225`),
				"dele":         regexp.MustCompile(`^250`),
				"rmd-sub":      regexp.MustCompile(`^250`),
				"cdup":         regexp.MustCompile(`^250`),
				"rmd":          regexp.MustCompile(`^250`),
				"quit":         regexp.MustCompile(`^221`),
			}
			if tg.tls {
				want["auth"] = regexp.MustCompile(`^234`)
				want["prot"] = regexp.MustCompile(`^200`)
			}
			for step, re := range want {
				if !re.MatchString(got[step]) {
					t.Errorf("%s: got %q, want %s", step, got[step], re)
				}
			}
		})
	}
}

// testTLSConfig returns a server configuration with a fresh self-signed
// certificate for 127.0.0.1.
func testTLSConfig(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "ferry.test"},
		DNSNames:     []string{"ferry.test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
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

// TestFTPSThroughFilter: after AUTH TLS, answered by the control filter,
// commands still get the filter's replies, and a PROT P data connection
// (ftpserverlib's TLS) resumes the control connection's TLS session.
func TestFTPSThroughFilter(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.TLS = testTLSConfig(t) })
	want := writeRandom(t, ts.root, "f.bin", 256<<10)
	f := dialRaw(t, ts)
	f.expect(234, "AUTH TLS")
	ccfg := &tls.Config{ServerName: "ferry.test", InsecureSkipVerify: true, ClientSessionCache: tls.NewLRUClientSessionCache(4)} //nolint:gosec // test certificate
	tc := tls.Client(f.conn, ccfg)
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	f.conn, f.tp = tc, textproto.NewConn(tc)
	f.expect(331, "USER %s", testUser)
	f.expect(530, "PASS wrong")
	if code := f.login(testUser, testPass); code != 230 {
		t.Fatalf("login: %d", code)
	}
	f.expect(200, "PBSZ 0")
	f.expect(200, "PROT P")
	f.expect(200, "STRU F")
	if msg := f.expect(257, "MKD /d"); !strings.HasPrefix(msg, `"/d"`) {
		t.Fatalf("MKD reply %q", msg)
	}
	f.expect(225, "ABOR")
	f.expect(425, "RETR /f.bin")
	f.expect(200, "TYPE I")
	d := f.openData()
	f.expect(150, "RETR /f.bin")
	dc := tls.Client(d, ccfg)
	b, err := io.ReadAll(dc)
	if err != nil {
		t.Fatalf("read data: %v", err)
	}
	dc.Close()
	if code, msg := f.read(); code != 226 {
		t.Fatalf("RETR: %d %q", code, msg)
	}
	if sha256Hex(b) != want {
		t.Fatal("downloaded data differs")
	}
	if !dc.ConnectionState().DidResume {
		t.Fatal("the data connection did not resume the control connection's TLS session")
	}
}
