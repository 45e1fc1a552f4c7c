package ftpserver

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Interoperability with FTP clients nobody here wrote: curl, lftp and
// Python's ftplib, in passive and active mode, both directions, checking
// SHA-256 of a few MB of random data.

const (
	interopSize    = 3<<20 + 12345 // a few MB, not a multiple of any buffer size
	clientDeadline = 60 * time.Second
)

// ftpTool runs one transfer with an external client. mode is "passive" or
// "active" (curl also has "active-P-": -P -).
type ftpTool struct {
	name  string
	bin   string
	modes []string
	sent  *regexp.Regexp // finds the commands the client sent in its verbose output
	get   func(ts *testServer, mode, remote, local string) []string
	put   func(ts *testServer, mode, local, remote string) []string
}

func curlArgs(ts *testServer, mode string) []string {
	args := []string{"--verbose", "--silent", "--show-error", "--fail", "--max-time", "60", "--connect-timeout", "10",
		"--user", testUser + ":" + testPass}
	switch mode {
	case "passive":
		args = append(args, "--ftp-pasv")
	case "active":
		args = append(args, "--ftp-port", "127.0.0.1")
	case "active-P-":
		args = append(args, "-P", "-")
	}
	return args
}

func lftpArgs(ts *testServer, mode, command string) []string {
	passive := "on"
	if mode == "active" {
		passive = "off"
	}
	script := strings.Join([]string{
		"set cmd:fail-exit yes",
		"set net:max-retries 1",
		"set net:timeout 15",
		"set net:reconnect-interval-base 1",
		"set ftp:ssl-allow no",
		"set ftp:passive-mode " + passive,
		fmt.Sprintf("open -u %s,%s -p %d %s", testUser, testPass, ts.port, ts.host),
		command,
		"bye",
	}, "; ")
	return []string{"-d", "-c", script}
}

func pyArgs(ts *testServer, mode, op, remote, local string) []string {
	return []string{filepath.Join("testdata", "ftpclient.py"), "-v", ts.host, strconv.Itoa(ts.port),
		testUser, testPass, mode, op, remote, local}
}

var ftpTools = []ftpTool{
	{
		name: "curl", bin: "curl", modes: []string{"passive", "active", "active-P-"},
		sent: regexp.MustCompile(`(?m)^> ([A-Z]+)`),
		get: func(ts *testServer, mode, remote, local string) []string {
			return append(curlArgs(ts, mode), "--output", local, ts.url(remote))
		},
		put: func(ts *testServer, mode, local, remote string) []string {
			return append(curlArgs(ts, mode), "--ftp-create-dirs", "--upload-file", local, ts.url(remote))
		},
	},
	{
		name: "lftp", bin: "lftp", modes: []string{"passive", "active"},
		sent: regexp.MustCompile(`---> ([A-Z]+)`),
		get: func(ts *testServer, mode, remote, local string) []string {
			return lftpArgs(ts, mode, fmt.Sprintf("get %s -o %s", remote, local))
		},
		put: func(ts *testServer, mode, local, remote string) []string {
			return lftpArgs(ts, mode, fmt.Sprintf("put %s -o %s", local, remote))
		},
	},
	{
		name: "python-ftplib", bin: "/usr/bin/python3", modes: []string{"passive", "active"},
		sent: regexp.MustCompile(`\*cmd\* '([A-Z]+)`),
		get: func(ts *testServer, mode, remote, local string) []string {
			return pyArgs(ts, mode, "get", remote, local)
		},
		put: func(ts *testServer, mode, local, remote string) []string {
			return pyArgs(ts, mode, "put", remote, local)
		},
	},
}

func runTool(t *testing.T, bin string, args []string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clientDeadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir()) // no ~/.netrc, ~/.lftprc
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", bin, args, err, out)
	}
	return string(out)
}

// checkMode fails unless the client's verbose output shows it used the
// requested data connection mode (no silent fallback).
func checkMode(t *testing.T, tool ftpTool, mode, out string) {
	t.Helper()
	verbs := map[string]bool{}
	for _, m := range tool.sent.FindAllStringSubmatch(out, -1) {
		verbs[m[1]] = true
	}
	passive := verbs["PASV"] || verbs["EPSV"]
	active := verbs["PORT"] || verbs["EPRT"]
	if wantActive := strings.HasPrefix(mode, "active"); passive == wantActive || active != wantActive {
		t.Fatalf("mode %s: client sent %v\n%s", mode, verbs, out)
	}
	t.Logf("client sent %v", verbs)
}

var execLookPath = exec.LookPath

func requireTool(t *testing.T, bin string) {
	t.Helper()
	if _, err := execLookPath(bin); err != nil {
		t.Skipf("%s not installed: %v", bin, err)
	}
}

func TestInteropMatrix(t *testing.T) {
	ts := startServer(t, nil)
	wantSum := writeRandom(t, ts.root, "pub/data.bin", interopSize)
	src := filepath.Join(t.TempDir(), "src.bin")
	srcSum := writeRandom(t, filepath.Dir(src), filepath.Base(src), interopSize)
	if err := os.Mkdir(filepath.Join(ts.root, "up"), 0o755); err != nil {
		t.Fatal(err)
	}

	for _, tool := range ftpTools {
		for _, mode := range tool.modes {
			for _, dir := range []string{"download", "upload"} {
				t.Run(tool.name+"/"+mode+"/"+dir, func(t *testing.T) {
					requireTool(t, tool.bin)
					switch dir {
					case "download":
						local := filepath.Join(t.TempDir(), "got.bin")
						checkMode(t, tool, mode, runTool(t, tool.bin, tool.get(ts, mode, "/pub/data.bin", local)))
						if got := fileSHA256(t, local); got != wantSum {
							t.Fatalf("sha256 = %s, want %s", got, wantSum)
						}
					case "upload":
						remote := fmt.Sprintf("/up/%s-%s.bin", tool.name, mode)
						checkMode(t, tool, mode, runTool(t, tool.bin, tool.put(ts, mode, src, remote)))
						if got := fileSHA256(t, filepath.Join(ts.root, filepath.FromSlash(remote))); got != srcSum {
							t.Fatalf("sha256 = %s, want %s", got, srcSum)
						}
					}
				})
			}
		}
	}

	// curl --ftp-create-dirs: MKD of a missing parent chain, then STOR.
	t.Run("curl/passive/upload-create-dirs", func(t *testing.T) {
		requireTool(t, "curl")
		runTool(t, "curl", append(curlArgs(ts, "passive"), "--ftp-create-dirs", "--upload-file", src, ts.url("/new/a/b/c.bin")))
		if got := fileSHA256(t, filepath.Join(ts.root, "new", "a", "b", "c.bin")); got != srcSum {
			t.Fatalf("sha256 = %s, want %s", got, srcSum)
		}
	})
}
