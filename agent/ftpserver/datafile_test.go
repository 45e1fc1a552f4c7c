package ftpserver

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/agent/netopt"
)

func chachaBytes(seed byte, n int) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

func cachedSum(t *testing.T, ts *testServer, rel string) (string, bool) {
	t.Helper()
	fi, err := os.Stat(filepath.Join(ts.root, rel))
	if err != nil {
		t.Fatal(err)
	}
	id, ok := identity(fi)
	if !ok {
		t.Skip("no file identity on this system: HASH is never cached")
	}
	return ts.data.hashes.lookup(id)
}

// TestHashFromTransfers: the server keeps the SHA-256 it computed while receiving an upload and
// while sending a download, HASH answers it (the same digest a fresh read gives), range hashes
// still read the file, and a change to the file is never answered from the old digest.
func TestHashFromTransfers(t *testing.T) {
	ts := startServer(t, nil)
	f := dialRaw(t, ts)
	f.login(testUser, testPass)

	data := chachaBytes(1, 3<<20+5)
	if code := f.stor("/up.bin", data); code != 226 {
		t.Fatalf("STOR: %d", code)
	}
	if sum, ok := cachedSum(t, ts, "up.bin"); !ok || sum != sha256Hex(data) {
		t.Fatalf("after STOR the cache holds %q (%v), want the upload's digest", sum, ok)
	}
	if msg := f.expect(213, "HASH /up.bin"); !strings.Contains(msg, sha256Hex(data)) {
		t.Fatalf("HASH after STOR = %q, want %s", msg, sha256Hex(data))
	}
	if msg := f.expect(250, "XSHA256 /up.bin 10 1000"); !strings.Contains(msg, sha256Hex(data[10:1000])) {
		t.Fatalf("XSHA256 range = %q, want %s", msg, sha256Hex(data[10:1000]))
	}

	// The file changes under the same name and size: a new identity, a fresh read.
	changed := chachaBytes(2, len(data))
	if err := os.WriteFile(filepath.Join(ts.root, "up.bin"), changed, 0o644); err != nil {
		t.Fatal(err)
	}
	if msg := f.expect(213, "HASH /up.bin"); !strings.Contains(msg, sha256Hex(changed)) {
		t.Fatalf("HASH after the file changed = %q, want %s", msg, sha256Hex(changed))
	}

	// A download leaves the digest its background hash computed.
	down := chachaBytes(3, 2<<20)
	if err := os.WriteFile(filepath.Join(ts.root, "down.bin"), down, 0o644); err != nil {
		t.Fatal(err)
	}
	got, code := f.retr("/down.bin")
	if code != 226 || !bytes.Equal(got, down) {
		t.Fatalf("RETR: %d, %d bytes, equal %v", code, len(got), bytes.Equal(got, down))
	}
	if sum, ok := cachedSum(t, ts, "down.bin"); !ok || sum != sha256Hex(down) {
		t.Fatalf("after RETR the cache holds %q (%v), want the file's digest", sum, ok)
	}
	if msg := f.expect(213, "HASH /down.bin"); !strings.Contains(msg, sha256Hex(down)) {
		t.Fatalf("HASH after RETR = %q", msg)
	}
	// Appending makes the file another: the answer is the new content's.
	fa, err := os.OpenFile(filepath.Join(ts.root, "down.bin"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = fa.Write([]byte("more"))
	fa.Close()
	if msg := f.expect(213, "HASH /down.bin"); !strings.Contains(msg, sha256Hex(append(down, "more"...))) {
		t.Fatalf("HASH after an append = %q", msg)
	}
}

// TestDataConnCongestion: Config.TCPCongestion is set on real data connections: those accepted
// by a passive listener the library wraps, and the connection a download is sent on (active
// mode's, which the server dials itself).
func TestDataConnCongestion(t *testing.T) {
	if _, _, err := netopt.Resolve("reno"); err != nil {
		t.Skipf("no per-socket congestion control: %v", err)
	}
	ts := startServer(t, func(c *Config) { c.TCPCongestion = "reno" })
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	d := &mainDriver{s: ts.Server}
	wl, err := d.WrapPassiveListener(ln)
	if err != nil {
		t.Fatal(err)
	}
	defer wl.Close()
	c, err := net.Dial("tcp", wl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc, err := wl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if got, err := netopt.Congestion(sc); err != nil || got != "reno" {
		t.Fatalf("passive data connection: congestion %q, %v; want reno", got, err)
	}

	// A download: dataFile.WriteTo sets it on the connection it sends on.
	a, b := tcpPair(t)
	defer a.Close()
	defer b.Close()
	if got, _ := netopt.Congestion(a); got == "reno" {
		t.Skip("reno is this system's default: the test would prove nothing")
	}
	data := chachaBytes(4, 1<<20)
	p := filepath.Join(ts.root, "f.bin")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	file, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	df := &dataFile{File: file, d: ts.data}
	recv := make(chan []byte, 1)
	go func() {
		got, _ := io.ReadAll(b)
		recv <- got
	}()
	if _, err := df.WriteTo(a); err != nil {
		t.Fatal(err)
	}
	if got, err := netopt.Congestion(a); err != nil || got != "reno" {
		t.Fatalf("download connection: congestion %q, %v; want reno", got, err)
	}
	a.Close()
	if got := <-recv; !bytes.Equal(got, data) {
		t.Fatalf("sendfile delivered %d bytes, not the file", len(got))
	}
	df.Close()
}

func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_ = ln.SetDeadline(time.Now().Add(5 * time.Second))
	c, err := net.DialTCP("tcp", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

// TestHashAfterRangedUploads: a file uploaded in ranges by two sessions at once (a parallel
// upload: the first range's STOR truncates it, the other's REST+STOR writes after it) is not
// answered from the first range's digest, even when that range's STOR ends last.
func TestHashAfterRangedUploads(t *testing.T) {
	ts := startServer(t, nil)
	first, second := dialRaw(t, ts), dialRaw(t, ts)
	first.login(testUser, testPass)
	second.login(testUser, testPass)
	first.expect(200, "OPTS XDIGEST ON") // nor may the range's digest go out in its 226
	data := chachaBytes(4, 2<<20)
	half := len(data) / 2

	d1 := first.openData()
	if code, msg := first.cmd("STOR /ranged.bin"); code != 150 {
		t.Fatalf("STOR: %d %s", code, msg)
	}
	if _, err := d1.Write(data[:half]); err != nil {
		t.Fatal(err)
	}
	// The first range's bytes are in the file before the second range starts.
	deadline := time.Now().Add(20 * time.Second)
	for {
		fi, err := os.Stat(filepath.Join(ts.root, "ranged.bin"))
		if err == nil && fi.Size() == int64(half) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first range did not reach the file: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	second.expect(350, "REST %d", half)
	d2 := second.openData()
	if code, msg := second.cmd("STOR /ranged.bin"); code != 150 {
		t.Fatalf("REST+STOR: %d %s", code, msg)
	}
	if _, err := d2.Write(data[half:]); err != nil {
		t.Fatal(err)
	}
	d2.Close()
	if code, msg := second.read(); code != 226 {
		t.Fatalf("second range: %d %s", code, msg)
	}
	d1.Close() // the first range's STOR ends last
	if code, msg := first.read(); code != 226 || strings.Contains(msg, "SHA-256") {
		t.Fatalf("first range: %d %s", code, msg)
	}
	if got := fileSHA256(t, filepath.Join(ts.root, "ranged.bin")); got != sha256Hex(data) {
		t.Fatalf("file on disk: sha256 %s, want %s", got, sha256Hex(data))
	}
	if msg := first.expect(213, "HASH /ranged.bin"); !strings.Contains(msg, sha256Hex(data)) {
		t.Fatalf("HASH = %q, want %s (the first range's digest is %s)", msg, sha256Hex(data), sha256Hex(data[:half]))
	}
}
