package datapath

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"
)

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{7})
	_, _ = r.Read(b)
	return b
}

// TestCopierBytesAndHash: whatever the reader's chunking and the grants, the copy writes the
// source's bytes, counts them all and hashes exactly them.
func TestCopierBytesAndHash(t *testing.T) {
	for _, n := range []int{0, 1, BufSize - 1, BufSize, 3*BufSize + 77} {
		src := randomBytes(n)
		want := sha256.Sum256(src)
		for name, r := range map[string]io.Reader{
			"whole":    bytes.NewReader(src),
			"onebyte":  iotest.OneByteReader(bytes.NewReader(src)),
			"halfread": iotest.HalfReader(bytes.NewReader(src)),
		} {
			if name == "onebyte" && n > BufSize {
				continue // slow and adds nothing
			}
			h := sha256.New()
			var counted, grants int
			cp := Copier{Hash: h, Count: func(k int) { counted += k },
				Grant: func(max int) (int, error) { grants++; return min(max, 100_000), nil }}
			var dst bytes.Buffer
			got, err := cp.Copy(&dst, r)
			if err != nil {
				t.Fatalf("%d/%s: %v", n, name, err)
			}
			if got != int64(n) || counted != n || !bytes.Equal(dst.Bytes(), src) {
				t.Fatalf("%d/%s: copied %d, counted %d, bytes equal %v", n, name, got, counted, bytes.Equal(dst.Bytes(), src))
			}
			if !bytes.Equal(h.Sum(nil), want[:]) {
				t.Fatalf("%d/%s: wrong digest", n, name)
			}
			if n > 100_000 && grants < n/100_000 {
				t.Fatalf("%d/%s: %d grants for %d bytes at 100000 a grant", n, name, grants, n)
			}
		}
	}
}

type failWriter struct{ after int }

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.after {
		k := w.after
		w.after = 0
		return k, errors.New("disk full")
	}
	w.after -= len(p)
	return len(p), nil
}

// TestCopierErrors: a write error, a read error and a refused grant end the copy with that error.
func TestCopierErrors(t *testing.T) {
	src := randomBytes(2 * BufSize)
	if _, err := (Copier{Hash: sha256.New()}).Copy(&failWriter{after: 1000}, bytes.NewReader(src)); err == nil || err.Error() != "disk full" {
		t.Errorf("write error: %v", err)
	}
	boom := errors.New("boom")
	if _, err := (Copier{Hash: sha256.New()}).Copy(io.Discard, iotest.ErrReader(boom)); !errors.Is(err, boom) {
		t.Errorf("read error: %v", err)
	}
	stop := errors.New("cancelled")
	if _, err := (Copier{Grant: func(int) (int, error) { return 0, stop }}).Copy(io.Discard, bytes.NewReader(src)); !errors.Is(err, stop) {
		t.Errorf("grant error: %v", err)
	}
}

// TestHashFileAndBackground: ranges of a file hash like the same bytes in memory; a range past
// EOF is an error; Stop ends a background hash early.
func TestHashFileAndBackground(t *testing.T) {
	data := randomBytes(2*BufSize + 5)
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, r := range [][2]int64{{0, -1}, {0, int64(len(data))}, {7, BufSize + 3}, {int64(len(data)), -1}} {
		h := sha256.New()
		x := Background(h, f, r[0], r[1])
		if _, err := x.Wait(); err != nil {
			t.Fatalf("%v: %v", r, err)
		}
		end := r[1]
		if end < 0 {
			end = int64(len(data))
		}
		want := sha256.Sum256(data[r[0]:end])
		if !bytes.Equal(h.Sum(nil), want[:]) {
			t.Errorf("range %v: wrong digest", r)
		}
	}
	if _, err := HashFile(sha256.New(), f, 0, int64(len(data))+1); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("range past EOF: %v", err)
	}
	x := Background(sha256.New(), f, 0, -1)
	x.Stop()
	if _, err := x.Wait(); err != nil && !errors.Is(err, errStopped) {
		t.Errorf("stopped hash: %v", err)
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "100": 100, "500K": 500 << 10, "50M": 50 << 20, "1G": 1 << 30, "1.5M": 3 << 19,
		"50MB/s": 50 << 20, "2MiB": 2 << 20, " 10k ": 10 << 10,
	} {
		got, err := ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "fast", "1X", "NaN", "1e300G"} {
		if _, err := ParseRate(in); err == nil {
			t.Errorf("ParseRate(%q) accepted", in)
		}
	}
	for _, n := range []int64{0, 512, 50 << 20, 3 << 19} {
		if got, err := ParseRate(FormatRate(n)); err != nil || got != n {
			t.Errorf("ParseRate(FormatRate(%d)=%q) = %d, %v", n, FormatRate(n), got, err)
		}
	}
}
