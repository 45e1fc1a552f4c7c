package ftpserver

import (
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/agent/storage"
)

// TestReplyHidesRootAndNamesFullDisk: the library's file errors quote the host path of the
// served directory; the filter shows it as the FTP root, and a full disk answers 452.
func TestReplyHidesRootAndNamesFullDisk(t *testing.T) {
	dir := t.TempDir()
	r, err := storage.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c := &controlConn{s: &Server{fs: &rootFs{root: r}}}
	got := string(c.reply([]byte("550 Issue during transfer: write " + dir + "/in/.x.bin.0123abcd.ferry-part: splice: no space left on device\r\n")))
	if strings.Contains(got, dir) {
		t.Errorf("reply shows the served directory: %q", got)
	}
	if !strings.HasPrefix(got, "452 ") || !strings.Contains(got, "write /in/.x.bin.0123abcd.ferry-part") {
		t.Errorf("full disk reply %q, want 452 naming the FTP path", got)
	}
	if got := string(c.reply([]byte("550 Could not access " + dir + ": denied\r\n"))); got != "550 Could not access /: denied\r\n" {
		t.Errorf("reply %q", got)
	}
	if got := string(c.reply([]byte("226 Closing data connection\r\n"))); got != "226 Closing data connection\r\n" {
		t.Errorf("an ordinary reply changed: %q", got)
	}
}
