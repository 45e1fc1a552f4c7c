package server_test

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/testagent"
	"github.com/ferry-dev/ferry/internal/testftp"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// TestResumeWithVsftpd: against a server without range hashes (vsftpd), a job interrupted by
// the agent's shutdown resumes its part file after the restart only while the source still has
// the size and modification time recorded at the checkpoint; a changed source moves whole.
// vsftpd's anon_max_rate keeps the transfer slow enough to interrupt.
func TestResumeWithVsftpd(t *testing.T) {
	v := testftp.StartVsftpd(t, testftp.Options{Extra: []string{"anon_max_rate=2000000"}})
	base := fmt.Sprintf("ftp://%s:%s@%s%s", url.PathEscape(v.User), url.PathEscape(v.Password), v.Addr, v.Pub)
	const size = 6 << 20
	for _, tc := range []struct {
		name   string
		upload bool
		change bool // the source changes while the agent is down
	}{
		{"download", false, false},
		{"download-changed", false, true},
		{"upload", true, false},
		{"upload-changed", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := testagent.Start(t, stateDir(t.TempDir()))
			var src, dst, srcPath, dstPath string
			if tc.upload {
				srcPath, dstPath = filepath.Join(a.Root, tc.name+".bin"), v.Local(v.Pub+"/"+tc.name+".bin")
				src, dst = tc.name+".bin", base+"/"+tc.name+".bin"
			} else {
				srcPath, dstPath = v.Local(v.Pub+"/"+tc.name+".bin"), filepath.Join(a.Root, tc.name+".bin")
				src, dst = base+"/"+tc.name+".bin", tc.name+".bin"
			}
			want := writeRandom(t, srcPath, size)
			tr := start(t, a, &ferryv1.StartTransferRequest{Source: src, Destination: dst, Mode: ferryv1.TransferMode_TRANSFER_MODE_PASSIVE})
			waitFor(t, a, tr.GetId(), 20*time.Second, "1 MiB moved", func(x *ferryv1.Transfer) bool { return x.GetProgress().GetBytesDone() >= 1<<20 })
			a.Stop()
			if _, err := os.Stat(dstPath); err == nil {
				t.Fatal("a partial file stands under the final name")
			}
			if tc.change {
				// FTP reports modification times to the second: the rewrite gets a later one.
				// (A same-size rewrite within the same second is what this check cannot see.)
				want = writeRandom(t, srcPath, size)
				later := time.Now().Add(2 * time.Second)
				if err := os.Chtimes(srcPath, later, later); err != nil {
					t.Fatal(err)
				}
			}
			a2 := a.Restart(t)
			final := waitFor(t, a2, tr.GetId(), 30*time.Second, "a final state", func(x *ferryv1.Transfer) bool {
				return x.GetState() >= ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED
			})
			if final.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED {
				t.Fatalf("%v: %s", final.GetState(), final.GetError())
			}
			if got := fileSHA(t, dstPath); got != want || final.GetSha256() != want {
				t.Fatalf("sha256 %s (reported %s), want %s", got, final.GetSha256(), want)
			}
			resumed := final.GetBytesResumed()
			t.Logf("resumed %d of %d bytes", resumed, size)
			if tc.change && resumed != 0 {
				t.Errorf("resumed %d bytes of a source that changed", resumed)
			}
			// A download keeps all it received; an upload loses what sat in socket buffers
			// when the agent stopped (the server never got it).
			if min := int64(1 << 20); !tc.change && (resumed < min && !tc.upload || resumed < min/4) {
				t.Errorf("resumed %d bytes after 1 MiB had moved", resumed)
			}
			parts, _ := filepath.Glob(filepath.Join(filepath.Dir(dstPath), ".*.ferry-part"))
			if len(parts) > 0 {
				t.Errorf("part files left: %v", parts)
			}
		})
	}
}
