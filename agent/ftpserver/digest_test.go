package ftpserver

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"strings"
	"testing"
)

// transferReply runs RETR (data nil) or STOR of data on f and returns what was read and the
// transfer's final reply text.
func transferReply(t *testing.T, f *rawFTP, cmd string, data []byte) ([]byte, string) {
	t.Helper()
	d := f.openData()
	defer d.Close()
	if code, msg := f.cmd("%s", cmd); code != 150 {
		t.Fatalf("%s: %d %s", cmd, code, msg)
	}
	var got []byte
	if data != nil {
		if _, err := io.Copy(d, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		d.Close()
	} else {
		var err error
		if got, err = io.ReadAll(d); err != nil {
			t.Fatal(err)
		}
	}
	code, msg := f.read()
	if code != 226 {
		t.Fatalf("%s: final reply %d %s", cmd, code, msg)
	}
	return got, msg
}

// TestTransferDigestReplies: after OPTS XDIGEST ON (offered in FEAT), the 226 of a STOR that
// wrote a whole file and of a RETR sent to the end of the file (also from a REST offset) carry
// the whole file's SHA-256, the one HASH answers; a resumed STOR (part of a file) and a client
// that did not ask get the library's reply unchanged.
func TestTransferDigestReplies(t *testing.T) {
	ts := startServer(t, nil)
	data := make([]byte, 3<<20)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	want := sha256Hex(data)

	plain := dialRaw(t, ts)
	if plain.login(testUser, testPass) != 230 {
		t.Fatal("login")
	}
	if _, msg := transferReply(t, plain, "STOR /a.bin", data); strings.Contains(msg, "SHA-256") {
		t.Errorf("a client that did not ask got a digest: %q", msg)
	}
	if _, msg := plain.cmd("FEAT"); !strings.Contains(msg, "XDIGEST") {
		t.Errorf("FEAT does not offer XDIGEST: %q", msg)
	}

	f := dialRaw(t, ts)
	if f.login(testUser, testPass) != 230 {
		t.Fatal("login")
	}
	f.expect(501, "OPTS XDIGEST MAYBE")
	f.expect(200, "OPTS XDIGEST ON")
	if _, msg := transferReply(t, f, "STOR /b.bin", data); !strings.HasSuffix(msg, fmt.Sprintf("; SHA-256 0-%d %s", len(data), want)) {
		t.Errorf("STOR's 226 %q, want it to end with the file's SHA-256 %s", msg, want)
	}
	got, msg := transferReply(t, f, "RETR /a.bin", nil)
	if !bytes.Equal(got, data) || !strings.HasSuffix(msg, fmt.Sprintf("; SHA-256 0-%d %s", len(data), want)) {
		t.Errorf("RETR's 226 %q (%d bytes), want it to end with the file's SHA-256 %s", msg, len(got), want)
	}
	f.expect(350, "REST 1000")
	got, msg = transferReply(t, f, "RETR /a.bin", nil)
	if !bytes.Equal(got, data[1000:]) || !strings.HasSuffix(msg, fmt.Sprintf("; SHA-256 0-%d %s", len(data), want)) {
		t.Errorf("RETR from 1000: 226 %q, want the whole file's SHA-256 %s", msg, want)
	}
	f.expect(350, "REST 1000")
	if _, msg := transferReply(t, f, "STOR /b.bin", data[1000:]); strings.Contains(msg, "SHA-256") {
		t.Errorf("a resumed STOR's 226 carries a digest: %q", msg)
	}
	if got := f.expect(213, "HASH /b.bin"); !strings.Contains(got, want) {
		t.Errorf("HASH after the resumed STOR: %q, want %s", got, want)
	}
	f.expect(200, "OPTS XDIGEST OFF")
	if _, msg := transferReply(t, f, "RETR /a.bin", nil); strings.Contains(msg, "SHA-256") {
		t.Errorf("digest after OPTS XDIGEST OFF: %q", msg)
	}
}
