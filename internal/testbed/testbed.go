package testbed

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	nsPrefix = "fbt-"               // every namespace a bed creates is named fbt-<bed id>-<host>
	netnsDir = "/run/netns"         // where ip netns keeps its namespaces
	etcDir   = "/etc/netns"         // files ip netns exec mounts over /etc, per namespace
	ownerDir = "/run/ferry-testbed" // one file per live bed: "<pid> <start time>" of its process

	cmdTimeout = 30 * time.Second // default bound for a command whose context has no deadline
)

// Available reports why a bed cannot be built here, or nil: it needs root, iproute2's ip and tc,
// and nftables' nft.
func Available() error {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (network namespaces)")
	}
	for _, bin := range []string{"ip", "tc", "nft"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		missing = append(missing, "kernel network namespaces")
	}
	if len(missing) > 0 {
		return fmt.Errorf("testbed needs %s", strings.Join(missing, ", "))
	}
	return nil
}

// Require skips the test when Available reports a problem, or fails it when the environment says
// the bed must run (CI or FERRY_TESTBED=require), so CI never skips the network tests silently.
func Require(t testing.TB) {
	t.Helper()
	err := Available()
	if err == nil {
		return
	}
	if os.Getenv("CI") != "" || os.Getenv("FERRY_TESTBED") == "require" {
		t.Fatalf("%v (required here: CI or FERRY_TESTBED=require is set)", err)
	}
	t.Skipf("%v; skipping (set FERRY_TESTBED=require to fail instead)", err)
}

// Bed is a set of hosts (network namespaces) and the links, rules and processes between them.
// Everything it creates is removed by the cleanup New registers.
type Bed struct {
	t   testing.TB
	id  string // 5 random base-36 characters
	net byte   // second octet of every IPv4 subnet of this bed: 10.<net>.<n>.0/24
	n6  uint16 // second group of every IPv6 subnet: fd00:<n6>:<n>::/64
	dir string // scratch files

	mu     sync.Mutex
	hosts  []*Host
	procs  []*Proc
	nets   int  // subnets allocated so far
	closed bool // cleanup has started: no more processes

	closers []func() // WAN links: closed before the namespaces go
}

var sweepOnce sync.Once

// New returns an empty bed. It calls Require, and registers a cleanup that kills every process
// the bed started and deletes its namespaces.
func New(t testing.TB) *Bed {
	t.Helper()
	Require(t)
	sweepOnce.Do(func() { sweepStale(t) })

	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatalf("testbed: random: %v", err)
	}
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	id := make([]byte, 5)
	for i := range id {
		id[i] = digits[int(rnd[i])%len(digits)]
	}
	b := &Bed{
		t:   t,
		id:  string(id),
		net: 1 + rnd[5]%254,
		n6:  uint16(rnd[6])<<8 | uint16(rnd[7]),
		dir: t.TempDir(),
	}
	// The owner file exists before any namespace and is removed after the last one, so a
	// namespace whose owner file is missing or names a dead process is stale (see sweepStale).
	if err := writeOwner(b.id); err != nil {
		t.Fatalf("testbed: %v", err)
	}
	t.Cleanup(b.cleanup)
	return b
}

// ID is the bed's unique short name; its namespaces are named fbt-<ID>-<host>.
func (b *Bed) ID() string { return b.id }

var hostName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,15}$`)

// Host creates a host: a network namespace named fbt-<bed id>-<name> with its loopback up. Names
// are short lower-case words (at most 16 characters), unique within the bed.
func (b *Bed) Host(name string) *Host {
	b.t.Helper()
	if !hostName.MatchString(name) {
		b.t.Fatalf("testbed: host name %q: want 1-16 of [a-z0-9-]", name)
	}
	b.mu.Lock()
	for _, h := range b.hosts {
		if h.Name == name {
			b.mu.Unlock()
			b.t.Fatalf("testbed: host %q already exists", name)
		}
	}
	h := &Host{Name: name, NS: nsPrefix + b.id + "-" + name, bed: b}
	b.hosts = append(b.hosts, h) // before it exists, so cleanup covers a half-made host
	b.mu.Unlock()

	// Name lookups in the bed fail at once instead of waiting for a DNS server that is not there
	// (Python's http.server, for one, looks up its own address).
	etc := filepath.Join(etcDir, h.NS)
	b.must(os.MkdirAll(etc, 0o755))
	b.must(os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"), 0o644))
	b.must(run(context.Background(), nil, "ip", "netns", "add", h.NS))
	b.must(run(context.Background(), nil, "ip", "-n", h.NS, "link", "set", "lo", "up"))
	// No duplicate address detection: addresses are usable at once, link-local ones included.
	for _, key := range []string{"net/ipv6/conf/all/accept_dad", "net/ipv6/conf/default/accept_dad"} {
		b.must(h.sysctl(key, "0"))
	}
	return h
}

// Hosts returns the bed's hosts in creation order.
func (b *Bed) Hosts() []*Host {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*Host(nil), b.hosts...)
}

// subnet allocates the next /24 (and /64) of the bed.
func (b *Bed) subnet() (v4, v6 netip.Prefix) {
	b.t.Helper()
	b.mu.Lock()
	b.nets++
	n := b.nets
	b.mu.Unlock()
	if n > 254 {
		b.t.Fatalf("testbed: more than 254 links in one bed")
	}
	v4 = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, b.net, byte(n), 0}), 24)
	v6 = netip.PrefixFrom(netip.AddrFrom16([16]byte{0: 0xfd, 2: byte(b.n6 >> 8), 3: byte(b.n6), 5: byte(n)}), 64)
	return v4, v6
}

func (b *Bed) must(err error) {
	b.t.Helper()
	if err != nil {
		b.t.Fatalf("testbed: %v", err)
	}
}

func (b *Bed) cleanup() {
	b.mu.Lock()
	b.closed = true
	procs, hosts, closers := b.procs, b.hosts, b.closers
	b.mu.Unlock()

	for _, c := range closers {
		c()
	}

	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(func() { p.Stop() })
	}
	wg.Wait()
	for _, h := range hosts {
		if err := removeNS(h.NS); err != nil {
			b.t.Errorf("testbed cleanup: %v", err)
		}
	}
	if err := os.Remove(filepath.Join(ownerDir, b.id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		b.t.Errorf("testbed cleanup: %v", err)
	}
}

// removeNS kills whatever still runs in the namespace, then deletes it and its /etc/netns files.
// A missing namespace is not an error.
func removeNS(ns string) error {
	if err := os.RemoveAll(filepath.Join(etcDir, ns)); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(netnsDir, ns)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := output(ctx, "ip", "netns", "pids", ns); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	err := run(ctx, nil, "ip", "netns", "delete", ns)
	if _, statErr := os.Stat(filepath.Join(netnsDir, ns)); errors.Is(statErr, os.ErrNotExist) {
		return nil // deleted, perhaps by a concurrent sweep
	}
	return err
}

func writeOwner(id string) error {
	if err := os.MkdirAll(ownerDir, 0o755); err != nil {
		return err
	}
	pid := os.Getpid()
	start, err := startTime(pid)
	if err != nil {
		return err
	}
	tmp := filepath.Join(ownerDir, "."+id)
	if err := os.WriteFile(tmp, fmt.Appendf(nil, "%d %s\n", pid, start), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(ownerDir, id))
}

// startTime is field 22 of /proc/<pid>/stat, which tells a process from a later one that reuses
// its pid.
func startTime(pid int) (string, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	i := bytes.LastIndexByte(stat, ')') // the command name before it may hold spaces
	if i < 0 {
		return "", fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(stat[i+1:])) // f[0] is field 3
	if len(f) < 20 {
		return "", fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return f[19], nil
}

// ownerAlive reports whether the process that wrote the bed's owner file still runs.
func ownerAlive(id string) bool {
	data, err := os.ReadFile(filepath.Join(ownerDir, id))
	if err != nil {
		return false
	}
	f := strings.Fields(string(data))
	if len(f) != 2 {
		return false
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil {
		return false
	}
	start, err := startTime(pid)
	return err == nil && start == f[1]
}

// sweepStale deletes the namespaces and owner files of beds whose process has died without
// cleaning up (a test binary killed by a timeout, say).
func sweepStale(t testing.TB) {
	var names []string
	for _, dir := range []string{netnsDir, etcDir} {
		entries, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Logf("testbed: sweep: %v", err)
		}
		for _, e := range entries {
			if !slices.Contains(names, e.Name()) {
				names = append(names, e.Name())
			}
		}
	}
	alive := map[string]bool{}
	isAlive := func(id string) bool {
		a, ok := alive[id]
		if !ok {
			a = ownerAlive(id)
			alive[id] = a
		}
		return a
	}
	for _, ns := range names {
		rest, ok := strings.CutPrefix(ns, nsPrefix)
		id, _, ok2 := strings.Cut(rest, "-")
		if !ok || !ok2 || isAlive(id) {
			continue
		}
		if err := removeNS(ns); err != nil {
			t.Logf("testbed: sweep: %v", err)
		} else {
			t.Logf("testbed: swept stale namespace %s", ns)
		}
	}
	owners, _ := os.ReadDir(ownerDir)
	for _, e := range owners {
		if id := e.Name(); !strings.HasPrefix(id, ".") && !isAlive(id) {
			_ = os.Remove(filepath.Join(ownerDir, id))
		}
	}
}

// run runs a command in the machine's namespace, bounded by ctx or cmdTimeout.
func run(ctx context.Context, stdin []byte, name string, args ...string) error {
	_, err := runOutput(ctx, stdin, name, args...)
	return err
}

func output(ctx context.Context, name string, args ...string) ([]byte, error) {
	return runOutput(ctx, nil, name, args...)
}

func runOutput(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cmdTimeout)
		defer cancel()
	}
	cmd := command(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return out.Bytes(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err,
			strings.TrimSpace(tail(out.String(), 2000)))
	}
	return out.Bytes(), nil
}

// command is exec.CommandContext in a process group of its own, which is killed as a whole when
// ctx ends, and which dies with the thread that started it (so a killed test binary leaves no
// servers behind).
func command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
