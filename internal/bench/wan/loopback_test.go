package wan

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/testagent"
	"github.com/ferry-dev/ferry/internal/testftp"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// BenchmarkLoopbackFiles: 10,000 files of 4 KiB on loopback, `lftp mirror --parallel=4` from
// vsftpd against Ferry agent to agent (the tree stream), downloads; one table from one run.
// Run with: go test -run '^$' -bench LoopbackFiles -benchtime 1x ./internal/bench/wan/
func BenchmarkLoopbackFiles(b *testing.B) {
	const n = 10_000
	for _, bin := range []string{testftp.Binary, "lftp"} {
		if _, err := exec.LookPath(bin); err != nil {
			b.Skipf("%s is not installed", bin)
		}
	}
	v := testftp.StartVsftpd(b, testftp.Options{})
	src, dst := testagent.Start(b), testagent.Start(b)
	makeTreeN(b, v.Local(v.Pub+"/tree"), n)
	makeTreeN(b, filepath.Join(src.Root, "tree"), n)
	work := b.TempDir()
	b.ResetTimer()

	var rows []row
	sec := fmt.Sprintf("%d x 4 KiB files download, loopback", n)
	mirror := timed(sec, "vsftpd + lftp mirror --parallel=4", n, func(ctx context.Context) error {
		out, err := exec.CommandContext(ctx, "lftp", "-c", fmt.Sprintf(
			"set cmd:fail-exit yes; set ftp:passive-mode on; open -u %s,%s ftp://%s; mirror --parallel=4 %s/tree %s",
			v.User, v.Password, v.Addr, v.Pub, filepath.Join(work, "mirror"))).CombinedOutput()
		if err != nil {
			return fmt.Errorf("lftp: %v: %s", err, out)
		}
		return nil
	})
	mirror.files = true
	rows = append(rows, mirror)
	ferry := timed(sec, "Ferry agent to agent (tree stream)", n, func(ctx context.Context) error {
		return copyTree(ctx, dst, src.URL("tree"), "tree/")
	})
	ferry.files = true
	rows = append(rows, ferry)
	b.StopTimer()
	printTable(rows)
}

func copyTree(ctx context.Context, a *testagent.Agent, src, dst string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	last, err := testagent.RunTransfer(ctx, a.Client, &ferryv1.StartTransferRequest{Source: src, Destination: dst})
	if err != nil {
		return err
	}
	if last.GetState() != ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED {
		return fmt.Errorf("%v: %s", last.GetState(), last.GetError())
	}
	return nil
}

// makeTreeN writes n files of smallSize bytes under dir, 100 to a directory.
func makeTreeN(b *testing.B, dir string, n int) {
	buf := randomBytes(b, smallSize)
	for i := range n {
		d := filepath.Join(dir, fmt.Sprintf("d%03d", i/100))
		if i%100 == 0 {
			must(b, os.MkdirAll(d, 0o777))
		}
		must(b, os.WriteFile(filepath.Join(d, fmt.Sprintf("f%05d.bin", i)), buf, 0o644))
	}
}
