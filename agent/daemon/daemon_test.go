package daemon

import (
	"net"
	"strings"
	"testing"
)

// TestTakenPortIsNamed: an agent whose port is taken fails New with one line naming the address
// (no panic), for the gRPC and the FTP port, and leaves nothing open.
func TestTakenPortIsNamed(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := l.Addr().String()
	for _, tc := range []struct{ grpc, ftp, want string }{
		{taken, "127.0.0.1:0", "grpc-listen: listen tcp " + taken},
		{"127.0.0.1:0", taken, taken},
	} {
		d, err := New(Config{Root: t.TempDir(), StateDir: t.TempDir(), GRPCListen: tc.grpc, FTPListen: tc.ftp})
		if err == nil {
			d.Close()
			t.Fatalf("New on a taken port %s succeeded", taken)
		}
		if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "address already in use") || strings.Contains(err.Error(), "\n") {
			t.Errorf("New: %q, want one line naming %s", err, tc.want)
		}
	}
}
