// Package daemon is ferry-agent as a library: New validates the configuration and opens the
// listeners, Run serves until its context ends, Close stops everything. Tests start real agents
// in-process on 127.0.0.1:0 with it; there is no global state.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ferry-dev/ferry/agent/fleet"
	"github.com/ferry-dev/ferry/agent/ftpclient"
	"github.com/ferry-dev/ferry/agent/ftpserver"
	"github.com/ferry-dev/ferry/agent/netopt"
	"github.com/ferry-dev/ferry/agent/pluginhost"
	"github.com/ferry-dev/ferry/agent/security"
	"github.com/ferry-dev/ferry/agent/server"
	"github.com/ferry-dev/ferry/agent/storage"
	"github.com/ferry-dev/ferry/agent/store"
	"github.com/ferry-dev/ferry/agent/transfer"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// Version is set at build time with -ldflags "-X github.com/ferry-dev/ferry/agent/daemon.Version=…"
// (make build); otherwise it is the module version Go stamps into the binary (go install
// …@v1.2.3, or a build in a git checkout), or "dev".
var Version = "dev"

func init() {
	if Version != "dev" {
		return
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		Version = bi.Main.Version
	}
}

// Config is everything an agent needs. Zero values get the documented defaults in New.
type Config struct {
	GRPCListen    string // host:port or unix:///path; default 127.0.0.1:7070
	FTPListen     string // default :2121
	Root          string // served directory; required, must exist
	StateDir      string // created if missing; holds the durable job store ("" keeps jobs in memory)
	PassivePorts  ftpserver.PortRange
	PublicHost    string
	HostOverrides []ftpserver.HostOverride
	Users         []ftpserver.User
	AnonymousRead bool
	// FTPUsersFile holds FTP accounts, one per line name:bcrypt-hash[:home[:ro|rw]] (see
	// ftpserver.ReadUsersFile); "" = none.
	FTPUsersFile string
	// FTP server flood limits (see ftpserver.Config): 0 = the defaults, negative = none.
	FTPMaxConns      int
	FTPMaxConnsPerIP int
	// FTPS: FTPTLS is off, optional (the default, also for "") or required; FTPTLSCert and
	// FTPTLSKey are PEM files (default: a self-signed certificate in StateDir, see ftptls.go);
	// FTPCA is a PEM bundle verifying ftpes:// and ftps:// servers (default: the system roots).
	FTPTLS     string
	FTPTLSCert string
	FTPTLSKey  string
	FTPCA      string
	// FTP client settings for transfers this agent runs.
	ActiveAddr  string
	ActiveBind  string
	ActivePorts ftpclient.PortRange
	DataTimeout time.Duration
	// ProbeTimeout bounds each auto-mode probe and each Diagnose check; default 3s.
	ProbeTimeout time.Duration
	DefaultMode  transfer.Mode
	GrantTTL     time.Duration // lifetime of one-time credentials for peers; default 5 min
	// Reliability: see transfer.Config for the defaults of zero values.
	Retries            int           // retries of transient failures (< 0: none)
	StallTimeout       time.Duration // a data connection with no byte for this long fails the attempt
	MaxTransfers       int           // running transfers; the rest wait in order
	MaxSessionsPerHost int           // FTP sessions open to one server
	History            time.Duration // how long finished transfers are kept
	Keep               int           // finished transfers kept in memory (and listed); default 1000
	PartTTL            time.Duration // age at which part files no job will resume are removed
	RetryBase          time.Duration // first retry delay (tests shorten it)
	// Fleet coordinator: poll interval of running deliveries and first retry delay of a host
	// (zero: 500ms and 1s; tests shorten them).
	FleetPoll      time.Duration
	FleetRetryBase time.Duration

	// API security. Without TokenFile or Tokens (and without NoAuth) the agent creates an admin
	// token in StateDir/admin.token.
	TokenFile   string           // "ROLE TOKEN" lines
	Tokens      []security.Token // accepted besides TokenFile's (tests)
	NoAuth      bool             // no authentication: loopback or unix socket only
	Insecure    bool             // allow plaintext gRPC on a non-loopback address
	TLSCert     string           // API TLS certificate and key (PEM files)
	TLSKey      string
	TLSClientCA string // verify client certificates against this CA; they map to roles
	CertRules   []security.CertRule
	// Calls to other agents: the token presented (PeerToken, or read from PeerTokenFile) and
	// TLS toward them (PeerCA to verify them; PeerCert/PeerKey for mutual TLS).
	PeerToken     string
	PeerTokenFile string
	PeerCA        string
	PeerCert      string
	PeerKey       string
	Logger        *slog.Logger

	// Plugins (agent/pluginhost; --plugin): auth plugins are asked for FTP logins at their
	// place in FTPAuthOrder (default grants, users, plugins), hook plugins observe and gate
	// transfers and receive FTP file events. PluginTimeout bounds every call (default 5s).
	Plugins       []pluginhost.Spec
	PluginTimeout time.Duration
	FTPAuthOrder  []ftpserver.AuthSource

	// AllowRemote limits the FTP servers and agents this agent connects to: CIDR|HOST[:PORTS]
	// rules (--allow-remote). Empty: everything but link-local addresses.
	AllowRemote []string

	// Operations (ops.go). MetricsListen serves Prometheus metrics at /metrics ("" = off);
	// AuditLog is the audit trail (JSON lines, mode 0600; "" = none).
	MetricsListen string
	AuditLog      string
	// Observers are told of every job event, after the agent's metrics and audit log (hook
	// plugins append theirs here); a member that is a transfer.Gate may veto, one that is a
	// transfer.ProgressObserver also gets progress. FTPEvents likewise receive the FTP server's
	// events (ftpserver.Event) after the metrics and the audit log.
	Observers []transfer.Observer
	FTPEvents []ftpserver.EventSink
	// TCPCongestion is the congestion control of the data connections this agent sends on
	// (--tcp-congestion): "" = bbr where the kernel offers it, else the system default (logged
	// once); "system" = the system default; else a name the kernel must accept.
	TCPCongestion string
	// LimitRate is the agent's bandwidth limit in bytes per second, shared by its transfers
	// (--limit-rate); 0 = none.
	LimitRate int64
}

// Addrs are the bound addresses, usable to dial.
type Addrs struct {
	GRPC    string // host:port, or unix:///path
	FTP     string // host:port
	Metrics string // host:port of the metrics endpoint; "" when off
}

// Daemon is a running agent.
type Daemon struct {
	cfg     Config
	log     *slog.Logger
	grpcLis net.Listener
	grpc    *grpc.Server
	ftp     *ftpserver.Server
	mgr     *transfer.Manager
	peers   *server.Peers // pooled gRPC connections to peer agents
	fleet   *fleet.Coordinator
	root    *storage.Root
	store   *store.Store
	plugins *pluginhost.Host // nil without --plugin
	started time.Time
	ftpPin  string // SHA-256 of the FTP server's certificate; "" with TLS off
	ops            // health, metrics, audit log (ops.go)
	// congestion is the congestion control set on data connections ("" = the system default).
	congestion string

	closeOnce sync.Once
	closeErr  error
}

// New validates cfg, opens the FTP and gRPC listeners and builds the engine. On error nothing is
// left open.
func New(cfg Config) (d *Daemon, err error) {
	if cfg.Root == "" {
		return nil, errors.New("root: required (the directory this agent serves)")
	}
	if fi, err := os.Stat(cfg.Root); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("root: %q is not a directory", cfg.Root)
	}
	if cfg.GRPCListen == "" {
		cfg.GRPCListen = "127.0.0.1:7070"
	}
	if cfg.FTPListen == "" {
		cfg.FTPListen = ":2121"
	}
	if cfg.GrantTTL <= 0 {
		cfg.GrantTTL = 5 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.StateDir != "" {
		if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
			return nil, fmt.Errorf("state-dir: %w", err)
		}
	}
	policy, err := transfer.ParsePolicy(cfg.AllowRemote)
	if err != nil {
		return nil, err
	}
	if cfg.LimitRate < 0 {
		return nil, fmt.Errorf("limit-rate: %d is negative; want bytes per second, 0 for no limit", cfg.LimitRate)
	}
	congestion, note, err := netopt.Resolve(cfg.TCPCongestion)
	if err != nil {
		return nil, err
	}
	if note != "" {
		cfg.Logger.Info(note)
	}
	d = &Daemon{cfg: cfg, log: cfg.Logger, started: time.Now(), congestion: congestion}
	opened := d // the named result is nil on the error returns below
	defer func() {
		if err != nil {
			opened.Close()
		}
	}()
	if d.root, err = storage.Open(cfg.Root); err != nil {
		return nil, fmt.Errorf("root: %w", err)
	}
	if cfg.StateDir != "" {
		if d.store, err = store.Open(cfg.StateDir); err != nil {
			return nil, fmt.Errorf("state-dir: %w", err)
		}
	}
	if err = d.openOps(); err != nil {
		return nil, err
	}
	var accounts []ftpserver.Account
	if cfg.FTPUsersFile != "" {
		if accounts, err = ftpserver.ReadUsersFile(cfg.FTPUsersFile); err != nil {
			return nil, fmt.Errorf("ftp-users-file: %w", err)
		}
	}
	ftpTLS, pin, err := ftpServerTLS(cfg)
	if err != nil {
		return nil, err
	}
	clientTLS, err := ftpClientTLS(cfg)
	if err != nil {
		return nil, err
	}
	d.ftpPin = pin
	var hooks *pluginhost.Hooks
	var auths []ftpserver.Authenticator
	if len(cfg.Plugins) > 0 {
		if d.plugins, err = pluginhost.New(pluginhost.Config{Plugins: cfg.Plugins, Timeout: cfg.PluginTimeout,
			Logger: cfg.Logger.With("part", "plugins")}); err != nil {
			return nil, err
		}
		hooks, auths = d.plugins.Hooks(), d.plugins.Authenticators()
	}
	ftpEvents := d.ftpEvents()
	var ftpGate ftpserver.PublishGate
	if hooks != nil {
		ftpEvents = append(ftpEvents, hooks) // hook plugins see uploads, deletes and renames
		ftpGate = hooks                      // ... and may veto a pushed file's publication
	}
	d.ftp, err = ftpserver.New(ftpserver.Config{
		Listen: cfg.FTPListen, Root: cfg.Root, Storage: d.root, PassivePorts: cfg.PassivePorts,
		PublicHost: cfg.PublicHost, HostOverrides: cfg.HostOverrides,
		Users: cfg.Users, AnonymousRead: cfg.AnonymousRead, Logger: cfg.Logger.With("part", "ftp"),
		Accounts: accounts, MaxConns: cfg.FTPMaxConns, MaxConnsPerIP: cfg.FTPMaxConnsPerIP,
		TLS: ftpTLS, TLSRequired: cfg.FTPTLS == FTPTLSRequired, TCPCongestion: congestion,
		Authenticators: auths, AuthOrder: cfg.FTPAuthOrder, Events: ftpEvents, PublishGate: ftpGate,
	})
	if err != nil {
		return nil, fmt.Errorf("ftp server: %w", err)
	}
	serverOpts, auth, peers, err := d.security()
	if err != nil {
		return nil, err
	}
	d.peers = peers
	// The gRPC listener is opened before the engine starts: recovered jobs must not run on an
	// agent that cannot serve its API.
	d.grpcLis, err = listen(cfg.GRPCListen)
	if err != nil {
		return nil, fmt.Errorf("grpc-listen: %w", err)
	}
	tcfg := transfer.Config{
		Storage: d.root,
		Peers:   peers,
		Local:   granter{d},
		Client: transfer.ClientOptions{
			ActiveAddr: cfg.ActiveAddr, ActiveBind: cfg.ActiveBind, ActivePorts: cfg.ActivePorts,
			DataTimeout: cfg.DataTimeout, ProbeTimeout: cfg.ProbeTimeout, StallTimeout: cfg.StallTimeout,
			TLS: clientTLS, TCPCongestion: congestion,
		},
		LimitRate:   cfg.LimitRate,
		DefaultMode: cfg.DefaultMode, Retries: cfg.Retries, RetryBase: cfg.RetryBase,
		MaxTransfers: cfg.MaxTransfers, MaxSessionsPerHost: cfg.MaxSessionsPerHost,
		History: cfg.History, PartTTL: cfg.PartTTL, Keep: cfg.Keep, Policy: policy,
		Logger: cfg.Logger.With("part", "transfer"), Observer: d.observers(),
	}
	if d.store != nil {
		tcfg.Store = &healthStore{Store: d.store, d: d}
	}
	if hooks != nil {
		// hook plugins: events, and vetoes before start and publish
		tcfg.Observer = append(d.observers(), hooks)
	}
	if d.mgr, err = transfer.NewManager(tcfg); err != nil {
		return nil, err
	}
	serverOpts = append(serverOpts, d.interceptors(auth)...)
	d.grpc = grpc.NewServer(append(serverOpts, server.ServerOptions()...)...)
	ferryv1.RegisterAgentServiceServer(d.grpc, server.New(server.Config{
		Manager: d.mgr, Granter: granter{d}, Info: d.info,
	}))
	d.registerOps()
	if d.fleet, err = d.newFleet(peers); err != nil {
		return nil, err
	}
	ferryv1.RegisterFleetServiceServer(d.grpc, fleet.NewService(d.fleet))
	return d, nil
}

// security builds the API's credentials and interceptors and the client side toward peers. It
// refuses what would expose the API: plaintext beyond loopback without Insecure, NoAuth beyond
// loopback.
func (d *Daemon) security() ([]grpc.ServerOption, *security.Authenticator, *server.Peers, error) {
	cfg := d.cfg
	local := security.LocalOnly(cfg.GRPCListen)
	auth := &security.Authenticator{CertRules: cfg.CertRules}
	switch {
	case cfg.NoAuth && !local:
		return nil, nil, nil, fmt.Errorf("no-auth: only on a loopback address or a unix socket, not on %s", cfg.GRPCListen)
	case cfg.NoAuth:
		auth.Disabled = true
		d.log.Warn("AUTHENTICATION IS OFF (--no-auth): anyone on this host can start transfers and read or write the served root through this agent; for experiments only", "grpc", cfg.GRPCListen)
	default:
		tokens := append([]security.Token(nil), cfg.Tokens...)
		if cfg.TokenFile != "" {
			list, err := security.LoadTokenFile(cfg.TokenFile)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("token-file: %w", err)
			}
			tokens = append(tokens, list...)
		}
		if len(tokens) == 0 && cfg.TLSClientCA == "" {
			if cfg.StateDir == "" {
				return nil, nil, nil, errors.New("token-file: required without a state directory (or give --no-auth on loopback)")
			}
			tok, path, created, err := security.EnsureAdminToken(cfg.StateDir)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("admin token: %w", err)
			}
			tokens = append(tokens, security.Token{Role: security.RoleAdmin, Value: tok})
			verb := "uses"
			if created {
				verb = "created"
			}
			d.log.Info(fmt.Sprintf("no --token-file: %s the admin token in %s (ferryctl --token-file %s)", verb, path, path))
		}
		t, err := security.NewTokens(tokens)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("token-file: %w", err)
		}
		auth.Tokens = t
	}
	var opts []grpc.ServerOption // the interceptors come in interceptors (ops.go)
	switch {
	case cfg.TLSCert != "" || cfg.TLSKey != "":
		tc, err := security.ServerTLS(cfg.TLSCert, cfg.TLSKey, cfg.TLSClientCA)
		if err != nil {
			return nil, nil, nil, err
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(tc)))
	case cfg.TLSClientCA != "":
		return nil, nil, nil, errors.New("tls-client-ca: needs --tls-cert and --tls-key")
	case !local && !cfg.Insecure:
		return nil, nil, nil, fmt.Errorf("grpc-listen: plaintext gRPC on %s would expose the API and its tokens to the network: give --tls-cert and --tls-key, or --insecure to accept it", cfg.GRPCListen)
	case !local:
		d.log.Warn("the gRPC API is plaintext on a network address (--insecure): tokens and one-time FTP credentials cross the network in clear", "grpc", cfg.GRPCListen)
	}
	peers := &server.Peers{Token: cfg.PeerToken}
	if cfg.PeerTokenFile != "" {
		tok, err := security.ReadClientToken(cfg.PeerTokenFile)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("peer-token-file: %w", err)
		}
		peers.Token = tok
	}
	if cfg.PeerCA != "" || cfg.PeerCert != "" {
		tc, err := security.ClientTLS(cfg.PeerCA, cfg.PeerCert, cfg.PeerKey)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("peer-ca/peer-cert: %w", err)
		}
		peers.TLS = tc
	}
	return opts, auth, peers, nil
}

// listen opens a TCP listener, or a unix socket for "unix:///path" (replacing a stale socket).
func listen(addr string) (net.Listener, error) {
	if p, ok := strings.CutPrefix(addr, "unix://"); ok {
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSocket != 0 {
			os.Remove(p)
		}
		return net.Listen("unix", p)
	}
	return net.Listen("tcp", addr)
}

// Addr returns the bound addresses.
func (d *Daemon) Addr() Addrs {
	a := Addrs{FTP: d.ftp.Addr().String()}
	if d.grpcLis.Addr().Network() == "unix" {
		a.GRPC = "unix://" + d.grpcLis.Addr().String()
	} else {
		a.GRPC = d.grpcLis.Addr().String()
	}
	if d.metricsLis != nil {
		a.Metrics = d.metricsLis.Addr().String()
	}
	return a
}

// Run serves gRPC, FTP and the metrics until ctx ends or a server fails, then closes the
// daemon. The health service says SERVING from here until Close begins.
func (d *Daemon) Run(ctx context.Context) error {
	errc := make(chan error, 3)
	go func() { errc <- d.grpc.Serve(d.grpcLis) }()
	go func() {
		err := d.ftp.Serve()
		if err != nil {
			d.setHealth(false, "the FTP listener failed", err)
		}
		errc <- err
	}()
	d.serveMetrics(errc)
	d.setHealth(true, "", nil)
	d.log.Info("ferry-agent running", "version", Version, "grpc", d.Addr().GRPC, "ftp", d.Addr().FTP, "metrics", d.Addr().Metrics, "root", d.cfg.Root)
	var err error
	select {
	case <-ctx.Done():
		d.log.Info("ferry-agent stopping", "cause", context.Cause(ctx))
	case err = <-errc:
		if errors.Is(err, grpc.ErrServerStopped) {
			err = nil
		}
	}
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Close shuts down in order: the health service says NOT_SERVING; the gRPC and FTP listeners
// stop accepting; the engine checkpoints running transfers (they resume at the next start) and
// ends their watchers; then the gRPC server (gracefully for up to 5 s), the FTP server, plugins,
// the metrics endpoint, the store and the audit log are closed. Safe to call more than once.
func (d *Daemon) Close() error {
	d.closeOnce.Do(func() {
		d.setHealth(false, whyShutdown, nil)
		var grpcDone chan struct{}
		if d.grpc != nil {
			// GracefulStop closes the listener at once (no new connection or call), then
			// waits for the running calls, which the engine's close below ends.
			grpcDone = make(chan struct{})
			go func() { d.grpc.GracefulStop(); close(grpcDone) }()
		} else if d.grpcLis != nil {
			d.grpcLis.Close()
		}
		if d.ftp != nil {
			d.ftp.StopAccepting()
		}
		// Fleet jobs before the engine: the coordinator stops driving deliveries (they are
		// checkpointed in the store and go on after a restart).
		if d.fleet != nil {
			d.closeErr = errors.Join(d.closeErr, d.fleet.Close())
		}
		if d.mgr != nil {
			d.closeErr = errors.Join(d.closeErr, d.mgr.Close())
		}
		if d.peers != nil { // after the engine, their last user
			d.closeErr = errors.Join(d.closeErr, d.peers.Close())
		}
		if grpcDone != nil {
			d.endHealthWatches()
			select {
			case <-grpcDone:
			case <-time.After(5 * time.Second):
				d.grpc.Stop()
				<-grpcDone
			}
		}
		if d.ftp != nil {
			d.closeErr = errors.Join(d.closeErr, d.ftp.Close())
		}
		if d.plugins != nil { // after the engine and the FTP server, their last users
			d.closeErr = errors.Join(d.closeErr, d.plugins.Close())
		}
		d.closeMetrics()
		if d.store != nil {
			d.closeErr = errors.Join(d.closeErr, d.store.Close())
		}
		if d.root != nil {
			d.closeErr = errors.Join(d.closeErr, d.root.Close())
		}
		if d.audit != nil {
			d.closeErr = errors.Join(d.closeErr, d.audit.Close())
		}
		d.log.Info("ferry-agent stopped")
	})
	return d.closeErr
}

func (d *Daemon) info() *ferryv1.GetAgentInfoResponse {
	host, _ := os.Hostname()
	free, total := diskSpace(d.cfg.Root)
	return &ferryv1.GetAgentInfoResponse{
		Version:       Version,
		GrpcAddress:   d.Addr().GRPC,
		FtpAddress:    d.Addr().FTP,
		Root:          d.cfg.Root,
		PassivePorts:  &ferryv1.PortRange{Low: int32(d.cfg.PassivePorts.Lo), High: int32(d.cfg.PassivePorts.Hi)},
		PublicHost:    d.cfg.PublicHost,
		StartedAt:     timestamppb.New(d.started),
		Hostname:      host,
		TcpCongestion: d.congestion,
		LimitRate:     d.cfg.LimitRate,
		Plugins:       d.pluginInfo(),
		FreeBytes:     free,
		TotalBytes:    total,
	}
}

func (d *Daemon) pluginInfo() []*ferryv1.PluginInfo {
	if d.plugins == nil {
		return nil
	}
	var out []*ferryv1.PluginInfo
	for _, s := range d.plugins.Status() {
		out = append(out, &ferryv1.PluginInfo{Name: s.Name, Path: s.Path, Kinds: s.Kinds, State: string(s.State),
			Restarts: int32(s.Restarts), LastError: s.LastError, Pid: int32(s.PID), DroppedEvents: s.Dropped})
	}
	return out
}

// granter adapts the FTP server's credentials to the API's Granter.
type granter struct{ d *Daemon }

func (g granter) Grant(path string, write bool) (string, string, time.Time, error) {
	access := ftpserver.AccessRead
	if write {
		access = ftpserver.AccessWrite
	}
	exp := time.Now().Add(g.d.cfg.GrantTTL)
	user, pass, err := g.d.ftp.IssueCredential(ftpserver.Scope{Path: path, Access: access, TTL: g.d.cfg.GrantTTL})
	return user, pass, exp, err
}

func (g granter) PassivePorts() (lo, hi int) {
	return g.d.cfg.PassivePorts.Lo, g.d.cfg.PassivePorts.Hi
}

// granter is also the engine's LocalFTP: credentials on this agent's own FTP server for
// reversed transfers (the peer connects to the port; the host is the one it sees us at).
var _ transfer.LocalFTP = granter{}

func (g granter) LocalGrant(path string, write bool) (transfer.Grant, error) {
	user, pass, _, err := g.Grant(path, write)
	if err != nil {
		return transfer.Grant{}, err
	}
	return transfer.Grant{FTPAddr: net.JoinHostPort("", strconv.Itoa(g.FTPPort())), User: user, Password: pass,
		TLSPin: g.d.ftpPin}, nil
}

func (g granter) FTPPort() int {
	if a, ok := g.d.ftp.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	return 0
}
