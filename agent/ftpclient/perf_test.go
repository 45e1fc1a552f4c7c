package ftpclient

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/agent/netopt"
)

// TestChunkedSendfileUpload: an upload fed as *io.LimitedReader chunks of an *os.File (as the
// engine does, for progress and rate limits) goes through the sendfile path and stores exactly
// the file's bytes, also with chunks that do not line up with the stall-deadline chunks; the data
// connection carries Config.TCPCongestion, in both modes.
func TestChunkedSendfileUpload(t *testing.T) {
	if _, _, err := netopt.Resolve("reno"); err != nil {
		t.Skipf("no per-socket congestion control: %v", err)
	}
	addr, dir := startLib(t, nil)
	const size = 3*sendfileChunk + 1234
	local, sum := randomFile(t, size)
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			ctx := testCtx(t, 30*time.Second)
			cfg := libConfig(addr, mode)
			cfg.TCPCongestion = "reno"
			c := dial(t, cfg)
			f, err := os.Open(local)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			remote := "/chunked-" + mode.String()
			w, err := c.Stor(ctx, remote, 0)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := netopt.Congestion(w.(*writer).t.conn); err != nil || got != "reno" {
				t.Errorf("data connection congestion %q, %v; want reno", got, err)
			}
			var sent int64
			for _, chunk := range []int64{100, sendfileChunk + 7, 2 * sendfileChunk, size} {
				n, err := w.(io.ReaderFrom).ReadFrom(&io.LimitedReader{R: f, N: chunk})
				sent += n
				if err != nil {
					t.Fatal(err)
				}
				if sent == size {
					break
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if sent != size {
				t.Fatalf("sent %d, want %d", sent, size)
			}
			b, err := os.ReadFile(filepath.Join(dir, remote))
			if err != nil {
				t.Fatal(err)
			}
			got := sha256.Sum256(b)
			if hex.EncodeToString(got[:]) != sum {
				t.Fatalf("stored file differs (%d bytes)", len(b))
			}
		})
	}
}
