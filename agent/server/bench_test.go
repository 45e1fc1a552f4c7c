package server_test

import (
	"context"
	cryptorand "crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/agent/daemon"
	"github.com/ferry-dev/ferry/internal/testagent"
	"github.com/ferry-dev/ferry/internal/testftp"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// BenchmarkCopy moves one file over loopback four ways in the same run, so figures compare on a
// noisy shared machine: a raw TCP copy (sendfile to a socket, read into a file: the floor of any
// FTP stack), curl downloading from vsftpd (an established FTP stack), and one agent pulling
// from another in passive and active mode (which also fsyncs and checks SHA-256 end to end).
// `make bench` prints the figures with their ratio to raw TCP.
func BenchmarkCopy(b *testing.B) {
	const size = 256 << 20
	src := filepath.Join(b.TempDir(), "src.bin")
	writeRandomBlocks(b, src, size)

	b.Run("raw-tcp", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			rawTCPCopy(b, src, filepath.Join(b.TempDir(), "dst.bin"))
		}
	})

	v := testftp.StartVsftpd(b, testftp.Options{})
	if err := os.Link(src, v.Local(v.Pub+"/src.bin")); err != nil {
		copyFile(b, src, v.Local(v.Pub+"/src.bin"))
	}
	b.Run("vsftpd+curl", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			dst := filepath.Join(b.TempDir(), "dst.bin")
			url := fmt.Sprintf("ftp://%s%s/src.bin", v.Addr, v.Pub)
			if out, err := exec.Command("curl", "-sS", "--ftp-pasv", "-u", v.User+":"+v.Password, "-o", dst, url).CombinedOutput(); err != nil {
				b.Fatalf("curl: %v: %s", err, out)
			}
		}
	})

	// Between agents the FTP session is TLS by default (pinned); "-plain" is a peer with
	// --ftp-tls off, the same path as plain FTP to any server.
	a, tlsPeer := testagent.Start(b), testagent.Start(b)
	plainPeer := testagent.Start(b, func(c *daemon.Config) { c.FTPTLS = "off" })
	for _, pc := range []struct {
		suffix string
		peer   *testagent.Agent
	}{{"", tlsPeer}, {"-plain", plainPeer}} {
		peer := pc.peer
		copyFile(b, src, filepath.Join(peer.Root, "src.bin"))
		for _, m := range modes {
			b.Run("ferry-"+m.name+pc.suffix, func(b *testing.B) {
				b.SetBytes(size)
				for i := 0; i < b.N; i++ {
					dst := fmt.Sprintf("b%d.bin", i)
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
					resp, err := a.Client.StartTransfer(ctx, &ferryv1.StartTransferRequest{Source: peer.URL("src.bin"), Destination: dst, Mode: m.mode})
					if err != nil {
						b.Fatal(err)
					}
					stream, err := a.Client.WatchTransfer(ctx, &ferryv1.WatchTransferRequest{Id: resp.GetTransfer().GetId()})
					if err != nil {
						b.Fatal(err)
					}
					var last *ferryv1.Transfer
					for {
						msg, err := stream.Recv()
						if err != nil {
							break
						}
						last = msg.GetTransfer()
					}
					cancel()
					if last.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED {
						b.Fatalf("transfer %v: %s", last.GetState(), last.GetError())
					}
					b.StopTimer()
					os.Remove(filepath.Join(a.Root, dst))
					b.StartTimer()
				}
			})
		}
	}
}

// writeRandomBlocks writes n random bytes in 1 MiB blocks.
func writeRandomBlocks(b *testing.B, path string, n int64) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, 1<<20)
	for off := int64(0); off < n; off += int64(len(block)) {
		if _, err := cryptorand.Read(block); err != nil {
			b.Fatal(err)
		}
		if _, err := f.Write(block); err != nil {
			b.Fatal(err)
		}
	}
}

func copyFile(b *testing.B, from, to string) {
	in, err := os.Open(from)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	if _, err := io.Copy(out, in); err != nil {
		b.Fatal(err)
	}
}

// rawTCPCopy sends a file over a loopback TCP connection (sendfile) into another file.
func rawTCPCopy(b *testing.B, src, dst string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	errc := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer c.Close()
		f, err := os.Open(src)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		_, err = io.Copy(c, f)
		errc <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	out, err := os.Create(dst)
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	if _, err := io.Copy(out, c); err != nil {
		b.Fatal(err)
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
}
