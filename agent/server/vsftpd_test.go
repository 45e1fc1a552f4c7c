package server_test

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferry-dev/ferry/internal/testagent"
	"github.com/ferry-dev/ferry/internal/testftp"
)

// TestAgainstVsftpd drives the agent's FTP client against vsftpd, software no one here wrote:
// upload and download of a file and of a tree, in both modes. vsftpd has no HASH, so the
// transfers succeed unverified, with the size checked.
func TestAgainstVsftpd(t *testing.T) {
	v := testftp.StartVsftpd(t, testftp.Options{})
	a := testagent.Start(t)
	base := fmt.Sprintf("ftp://%s:%s@%s%s", url.PathEscape(v.User), url.PathEscape(v.Password), v.Addr, v.Pub)
	const size = 6 << 20
	want := writeRandom(t, filepath.Join(a.Root, "out/file.bin"), size)
	treeWant, treeSize := makeTree(t, filepath.Join(a.Root, "out/tree"))
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			up := run(t, a, "out/file.bin", base+"/"+m.name+"/file.bin", m.mode)
			final := checkProgress(t, up, size, 1)
			if final.GetVerified() {
				t.Errorf("verified against vsftpd, which has no HASH")
			}
			if got := fileSHA(t, v.Local(v.Pub+"/"+m.name+"/file.bin")); got != want {
				t.Errorf("uploaded sha256 %s, want %s", got, want)
			}
			down := run(t, a, base+"/"+m.name+"/file.bin", "back/"+m.name+".bin", m.mode)
			checkProgress(t, down, size, 1)
			if got := fileSHA(t, filepath.Join(a.Root, "back", m.name+".bin")); got != want {
				t.Errorf("downloaded sha256 %s, want %s", got, want)
			}
			checkProgress(t, run(t, a, "out/tree/", base+"/"+m.name+"/tree", m.mode), treeSize, int64(len(treeWant)))
			checkTree(t, v.Local(v.Pub+"/"+m.name+"/tree"), treeWant)
			checkProgress(t, run(t, a, base+"/"+m.name+"/tree/", "back/tree-"+m.name, m.mode), treeSize, int64(len(treeWant)))
			checkTree(t, filepath.Join(a.Root, "back", "tree-"+m.name), treeWant)
			parts, _ := filepath.Glob(v.Local(v.Pub + "/" + m.name + "/.*.ferry-part"))
			if len(parts) > 0 {
				t.Errorf("part files left on vsftpd: %v", parts)
			}
		})
	}
	if _, err := os.Stat(v.Local(v.Pub + "/passive/file.bin")); err != nil {
		t.Fatal(err)
	}
}
