// Command ferry-agent runs one Ferry agent: an FTP server over --root and a gRPC API that starts
// and watches transfers run by its FTP client. The agent itself lives in agent/daemon; this file
// only turns flags into a daemon.Config and runs it until SIGINT/SIGTERM.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ferry-dev/ferry/agent/config"
	"github.com/ferry-dev/ferry/agent/daemon"
	"github.com/ferry-dev/ferry/agent/datapath"
	"github.com/ferry-dev/ferry/agent/ftpclient"
	"github.com/ferry-dev/ferry/agent/ftpserver"
	"github.com/ferry-dev/ferry/agent/security"
	"github.com/ferry-dev/ferry/agent/transfer"
)

const usage = `ferry-agent: serve a directory over FTP and run transfers started over gRPC.

Usage:
  ferry-agent --root DIR [flags]
  ferry-agent --config FILE [flags]

       ferry-agent token          (print a new random API token)
       ferry-agent version        (print the version)

Settings come from flags, then FERRY_<FLAG> environment variables (FERRY_GRPC_LISTEN=...), then
the --config YAML file (flag names as keys; lists for repeatable flags), then defaults.

Every gRPC call is authenticated: with a bearer token from --token-file ("ROLE TOKEN" lines;
roles admin, peer, viewer, fleet), or a client certificate (--tls-client-ca). Without --token-file the
agent creates an admin token in <state-dir>/admin.token on first start.

Example:
  ferry-agent --root /srv/ferry --state-dir /var/lib/ferry --grpc-listen 127.0.0.1:7070 \
      --ftp-listen :2121 --passive-ports 50000-50100 --ftp-users-file /etc/ferry/ftp-users
  ferryctl --token-file /var/lib/ferry/admin.token agent info
  ferry-agent --config /etc/ferry/agent.yaml --print-config     (the effective settings, secrets masked)

Plugins (docs/plugins.md):
  ferry-agent --root /srv/ferry \
      --plugin '/usr/lib/ferry/auth-htpasswd -file /etc/ferry/ftp.htpasswd -home /users/{user}' \
      --plugin '/usr/lib/ferry/hook-exec -events before_publish -- /usr/local/bin/scan' \
      --plugin-fail /usr/lib/ferry/hook-exec=closed

Flags:
`

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "ferry-agent:", err)
		os.Exit(2)
	}
}

// options are the flags that do not map one to one onto daemon.Config fields.
type options struct {
	cfg          daemon.Config
	configFile   string
	printConfig  bool
	version      bool
	passive      string
	activePorts  string
	defaultMode  string
	logLevel     string
	logFormat    string
	users        userFlag
	hostOverride multiFlag
	certRules    multiFlag
	allowRemote  multiFlag
	pluginFlags  pluginFlagSet
	limitRate    string
}

// newFlags defines ferry-agent's flags. Every flag is also a key of the --config file and an
// environment variable FERRY_<NAME> (agent/config).
func newFlags() (*flag.FlagSet, *options) {
	fs := flag.NewFlagSet("ferry-agent", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	o := &options{passive: "50000-50100", defaultMode: "auto", logLevel: "info", logFormat: "text"}
	cfg := &o.cfg
	fs.StringVar(&o.configFile, "config", "", "YAML file of settings: flag names as keys (root: /srv/ferry); flags and FERRY_* variables override it")
	fs.BoolVar(&o.printConfig, "print-config", false, "print the effective configuration (as a --config file, secrets masked, each value's source) and exit")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	fs.StringVar(&cfg.GRPCListen, "grpc-listen", "127.0.0.1:7070", "gRPC API address (host:port or unix:///path)")
	fs.StringVar(&cfg.FTPListen, "ftp-listen", ":2121", "FTP server address")
	fs.StringVar(&cfg.Root, "root", "", "served directory (required); local transfer paths are confined to it")
	fs.StringVar(&cfg.StateDir, "state-dir", defaultStateDir(), "directory for the agent's state: the job store (created if missing; one agent per directory)")
	fs.IntVar(&cfg.Retries, "retries", 5, "retries of a transfer after a transient failure (0: none), with exponential backoff")
	fs.DurationVar(&cfg.StallTimeout, "stall-timeout", 60*time.Second, "client: fail an attempt whose data connection moves no byte for this long")
	fs.IntVar(&cfg.MaxTransfers, "max-transfers", 16, "transfers running at once; the rest wait in order (QUEUED)")
	fs.IntVar(&cfg.MaxSessionsPerHost, "max-sessions-per-host", 4, "FTP sessions open at once to one server")
	fs.DurationVar(&cfg.History, "history", 7*24*time.Hour, "how long finished transfers are kept in the job store")
	fs.DurationVar(&cfg.PartTTL, "part-ttl", 24*time.Hour, "remove part files that no transfer will resume once they are this old")
	fs.StringVar(&o.passive, "passive-ports", o.passive, "FTP server passive port range LO-HI")
	fs.StringVar(&cfg.PublicHost, "public-host", "", "address announced in PASV replies (server behind NAT)")
	fs.Var(&o.hostOverride, "public-host-for", "CIDR=HOST: announce HOST in PASV replies to clients in CIDR (repeatable)")
	fs.Var(&o.users, "ftp-user", "NAME:PASSWORD FTP account with read/write access (repeatable; for quick tests: the password shows in ps, prefer --ftp-users-file)")
	fs.StringVar(&cfg.FTPUsersFile, "ftp-users-file", "", "FTP accounts, one per line NAME:BCRYPT-HASH[:HOME[:ro|rw]] (htpasswd -nbB NAME PASSWORD writes the first two fields)")
	fs.IntVar(&cfg.FTPMaxConns, "ftp-max-conns", 256, "FTP control connections at once; more get 421 (0: no limit)")
	fs.IntVar(&cfg.FTPMaxConnsPerIP, "ftp-max-conns-per-ip", 16, "FTP control connections at once from one address (IPv6: one /64); more get 421 (0: no limit)")
	fs.BoolVar(&cfg.AnonymousRead, "anonymous-read", false, "allow anonymous read-only FTP logins")
	fs.StringVar(&cfg.FTPTLS, "ftp-tls", daemon.FTPTLSOptional, "FTP server TLS (explicit FTPS): off, optional or required (no login or transfer without TLS)")
	fs.StringVar(&cfg.FTPTLSCert, "ftp-tls-cert", "", "FTP server certificate (PEM); default: a self-signed one kept in --state-dir")
	fs.StringVar(&cfg.FTPTLSKey, "ftp-tls-key", "", "FTP server private key (PEM), with --ftp-tls-cert")
	fs.StringVar(&cfg.FTPCA, "ftp-ca", "", "client: PEM bundle of the CAs that verify ftps:// and ftpes:// servers (default: the system roots)")
	fs.StringVar(&cfg.ActiveAddr, "active-addr", "", "client: address announced in PORT/EPRT (client behind NAT)")
	fs.StringVar(&o.activePorts, "active-ports", "", "client: local port range LO-HI for active-mode data connections")
	fs.DurationVar(&cfg.DataTimeout, "data-timeout", 10*time.Second, "client: time allowed to open a data connection")
	fs.DurationVar(&cfg.ProbeTimeout, "probe-timeout", 3*time.Second, "client: in auto mode and diagnostics, time after which a data connection counts as blocked (at most --data-timeout)")
	fs.Var(&o.allowRemote, "allow-remote", "client: CIDR|HOST[:PORTS] the agent may connect to (FTP servers, agents; PORTS: 21, 2121-2130 or *; repeatable); default: anything but link-local addresses")
	fs.StringVar(&o.defaultMode, "default-mode", o.defaultMode, "mode for transfers that do not ask for one: auto, passive or active")
	fs.StringVar(&o.logLevel, "log-level", o.logLevel, "debug, info, warn or error (debug adds every FTP command and reply, passwords masked)")
	fs.StringVar(&o.logFormat, "log-format", o.logFormat, "log lines as text (key=value) or json (one object per line), on stderr")
	fs.StringVar(&cfg.MetricsListen, "metrics-listen", "", "serve Prometheus metrics (ferry_*) on http://ADDR/metrics, e.g. 127.0.0.1:9464 (default: off)")
	fs.StringVar(&cfg.AuditLog, "audit-log", "", "append an audit trail to FILE (JSON lines, mode 0600): FTP logins and file operations, transfers, every API call with the caller")
	fs.StringVar(&cfg.TokenFile, "token-file", "", `API tokens, one "ROLE TOKEN" per line (roles admin, peer, viewer, fleet; mode 0600); default: an admin token created in <state-dir>/admin.token`)
	fs.BoolVar(&cfg.NoAuth, "no-auth", false, "no API authentication: for experiments on a loopback address or unix socket only")
	fs.BoolVar(&cfg.Insecure, "insecure", false, "allow plaintext gRPC on a non-loopback --grpc-listen (tokens cross the network in clear)")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "gRPC API TLS certificate (PEM)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "gRPC API TLS private key (PEM)")
	fs.StringVar(&cfg.TLSClientCA, "tls-client-ca", "", "verify client certificates against this CA (PEM); they map to roles by their OU or --tls-client-role")
	fs.Var(&o.certRules, "tls-client-role", "ROLE=CN-GLOB: client certificates whose CN matches get ROLE (repeatable; first match wins)")
	fs.StringVar(&cfg.PeerTokenFile, "peer-token-file", "", "token this agent presents to other agents (their token files list it as peer)")
	fs.StringVar(&cfg.PeerCA, "peer-ca", "", "CA (PEM) that other agents' API certificates are verified against; set, calls to peers use TLS")
	fs.StringVar(&cfg.PeerCert, "peer-cert", "", "client certificate (PEM) presented to other agents")
	fs.StringVar(&cfg.PeerKey, "peer-key", "", "private key of --peer-cert")
	fs.StringVar(&cfg.TCPCongestion, "tcp-congestion", "", `TCP congestion control of the data connections this agent sends on, e.g. bbr or cubic; default bbr where the kernel offers it, "system" keeps the host's default`)
	fs.StringVar(&o.limitRate, "limit-rate", "0", "bandwidth limit of this agent in bytes per second, shared by all its transfers, e.g. 500K, 50M, 1G (0: none); a transfer may have its own (ferryctl copy --limit-rate)")
	o.pluginFlags.register(fs, cfg)
	return fs, o
}

func run(args []string) error {
	if len(args) == 1 && args[0] == "token" {
		tok, err := security.NewTokenValue()
		if err != nil {
			return err
		}
		fmt.Println(tok)
		return nil
	}
	if len(args) == 1 && args[0] == "version" {
		fmt.Println(versionLine())
		return nil
	}
	fs, o := newFlags()
	src, err := config.Load(fs, args, os.Getenv)
	if err != nil {
		return err
	}
	if o.version {
		fmt.Println(versionLine())
		return nil
	}
	cfg, err := o.daemonConfig(fs)
	if err != nil {
		return src.Annotate(err)
	}
	if o.printConfig {
		var b bytes.Buffer
		if err := config.Print(&b, fs, src); err != nil {
			return err
		}
		fmt.Printf("# ferry-agent %s: effective configuration (flags > FERRY_* environment > --config file > defaults)\n", daemon.Version)
		_, err := os.Stdout.Write(b.Bytes())
		return err
	}
	logger, err := newLogger(o.logLevel, o.logFormat, os.Stderr)
	if err != nil {
		return src.Annotate(err)
	}
	cfg.Logger = logger
	if len(o.users.multiFlag) > 0 {
		cfg.Logger.Warn("--ftp-user puts the password in the process list (ps) of every user of this host; use --ftp-users-file for anything but a quick test")
	}
	for name, s := range src {
		if s.Kind == "env" {
			cfg.Logger.Debug("setting from the environment", "key", name, "variable", s.Where)
		}
	}
	// ferryctl's variables, and the test bed's, share the prefix.
	if unknown := config.UnknownEnv(fs, os.Environ(), "FERRY_TOKEN", "FERRY_CA", "FERRY_CERT", "FERRY_KEY",
		"FERRY_AGENT", "FERRY_TESTBED"); len(unknown) > 0 {
		cfg.Logger.Warn("environment variables that name no ferry-agent flag are ignored (a typo?)", "variables", unknown)
	}
	d, err := daemon.New(cfg)
	if err != nil {
		return src.Annotate(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := d.Addr()
	// One line on stdout that scripts can wait for.
	if a.Metrics != "" {
		fmt.Printf("ferry-agent ready grpc=%s ftp=%s metrics=%s\n", a.GRPC, a.FTP, a.Metrics)
	} else {
		fmt.Printf("ferry-agent ready grpc=%s ftp=%s\n", a.GRPC, a.FTP)
	}
	return d.Run(ctx)
}

func versionLine() string {
	return fmt.Sprintf("ferry-agent %s (%s, %s/%s)", daemon.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// newLogger is the agent's slog logger: text or JSON lines on w at level.
func newLogger(level, format string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log-level: want debug, info, warn or error, got %q", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log-format: want text or json, got %q", format)
}

// daemonConfig checks the flags' values and turns them into a daemon.Config. Errors start with
// the flag's name (config.Sources.Annotate adds the file and line).
func (o *options) daemonConfig(fs *flag.FlagSet) (daemon.Config, error) {
	cfg := o.cfg
	var (
		passive      = o.passive
		activePorts  = o.activePorts
		defaultMode  = o.defaultMode
		users        = o.users
		hostOverride = o.hostOverride
		certRules    = o.certRules
		allowRemote  = o.allowRemote
	)
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	if cfg.Retries == 0 {
		cfg.Retries = -1 // the daemon reads 0 as "the default"
	} else if cfg.Retries < 0 {
		return cfg, fmt.Errorf("--retries: want 0 or more, got %d", cfg.Retries)
	}
	for name, v := range map[string]int{"max-transfers": cfg.MaxTransfers, "max-sessions-per-host": cfg.MaxSessionsPerHost} {
		if v < 1 {
			return cfg, fmt.Errorf("--%s: want 1 or more, got %d", name, v)
		}
	}
	for name, v := range map[string]*int{"ftp-max-conns": &cfg.FTPMaxConns, "ftp-max-conns-per-ip": &cfg.FTPMaxConnsPerIP} {
		switch {
		case *v < 0:
			return cfg, fmt.Errorf("--%s: want 0 (no limit) or more, got %d", name, *v)
		case *v == 0:
			*v = -1 // the daemon reads 0 as "the default"
		}
	}
	for name, v := range map[string]time.Duration{"stall-timeout": cfg.StallTimeout, "history": cfg.History, "part-ttl": cfg.PartTTL} {
		if v <= 0 {
			return cfg, fmt.Errorf("--%s: want a positive duration, got %s", name, v)
		}
	}
	if cfg.StateDir == "" {
		return cfg, errors.New("--state-dir: required (no home directory to put a default in)")
	}
	for _, r := range certRules {
		rule, err := security.ParseCertRule(r)
		if err != nil {
			return cfg, fmt.Errorf("--tls-client-role: %w", err)
		}
		cfg.CertRules = append(cfg.CertRules, rule)
	}
	var err error
	if cfg.LimitRate, err = datapath.ParseRate(o.limitRate); err != nil {
		return cfg, fmt.Errorf("--limit-rate: %w", err)
	}
	if cfg.PassivePorts.Lo, cfg.PassivePorts.Hi, err = parseRange(passive); err != nil {
		return cfg, fmt.Errorf("--passive-ports: %w", err)
	}
	if activePorts != "" {
		var r ftpclient.PortRange
		if r.Lo, r.Hi, err = parseRange(activePorts); err != nil {
			return cfg, fmt.Errorf("--active-ports: %w", err)
		}
		cfg.ActivePorts = r
	}
	for _, u := range users.Values() {
		name, pass, ok := strings.Cut(u, ":")
		if !ok || name == "" || pass == "" {
			return cfg, fmt.Errorf("--ftp-user: want NAME:PASSWORD, got %q", redactUser(u))
		}
		cfg.Users = append(cfg.Users, ftpserver.User{Name: name, Password: pass})
	}
	for _, h := range hostOverride {
		cidr, host, ok := strings.Cut(h, "=")
		pfx, err := netip.ParsePrefix(cidr)
		if !ok || err != nil || host == "" {
			return cfg, fmt.Errorf("--public-host-for: want CIDR=HOST, got %q", h)
		}
		cfg.HostOverrides = append(cfg.HostOverrides, ftpserver.HostOverride{Network: pfx, Host: host})
	}
	cfg.AllowRemote = allowRemote.Values()
	if err := o.pluginFlags.apply(&cfg); err != nil {
		return cfg, err
	}
	switch defaultMode {
	case "auto":
		cfg.DefaultMode = transfer.ModeAuto
	case "passive":
		cfg.DefaultMode = transfer.ModePassive
	case "active":
		cfg.DefaultMode = transfer.ModeActive
	default:
		return cfg, fmt.Errorf("--default-mode: want auto, passive or active, got %q", defaultMode)
	}
	if _, err := newLogger(o.logLevel, o.logFormat, io.Discard); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// defaultStateDir is /var/lib/ferry-agent for root, else $XDG_STATE_HOME/ferry-agent
// (~/.local/state/ferry-agent); "" if neither can be found.
func defaultStateDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/ferry-agent"
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "ferry-agent")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "ferry-agent")
	}
	return ""
}

// multiFlag collects a repeatable flag (a YAML list in the --config file).
type multiFlag []string

func (m *multiFlag) String() string { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error {
	*m = append(*m, v)
	return nil
}

// Values lists the values given (config.Repeatable finds repeatable flags by it).
func (m *multiFlag) Values() []string { return append([]string(nil), *m...) }

// userFlag is --ftp-user: NAME:PASSWORD values, printed with the password masked.
type userFlag struct{ multiFlag }

// RedactedValues is what --print-config shows.
func (u *userFlag) RedactedValues() []string {
	out := make([]string, 0, len(u.multiFlag))
	for _, v := range u.multiFlag {
		out = append(out, redactUser(v))
	}
	return out
}

func (u *userFlag) String() string { return strings.Join(u.RedactedValues(), ",") }

func parseRange(s string) (lo, hi int, err error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, fmt.Errorf("want LO-HI, got %q", s)
	}
	if lo, err = strconv.Atoi(a); err != nil {
		return 0, 0, fmt.Errorf("want LO-HI, got %q", s)
	}
	if hi, err = strconv.Atoi(b); err != nil {
		return 0, 0, fmt.Errorf("want LO-HI, got %q", s)
	}
	if lo < 1 || hi > 65535 || lo > hi {
		return 0, 0, fmt.Errorf("want 1 <= LO <= HI <= 65535, got %q", s)
	}
	return lo, hi, nil
}

// redactUser shows NAME of NAME:PASSWORD only: flag errors must not print passwords.
func redactUser(s string) string {
	if name, _, ok := strings.Cut(s, ":"); ok {
		return name + ":xxxxx"
	}
	return s
}
