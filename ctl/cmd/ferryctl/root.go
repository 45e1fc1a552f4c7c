package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/ferry-dev/ferry/agent/security"
	"github.com/ferry-dev/ferry/ctl/render"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

const defaultAgent = "127.0.0.1:7070"

// app is the state shared by all commands of one ferryctl run: global flags, the output
// writers and the lazily dialled agent connection.
type app struct {
	agent     string
	tokenFile string
	caFile    string
	certFile  string
	keyFile   string
	output    string
	timeout   time.Duration
	format    render.Format
	stdout    io.Writer
	stderr    io.Writer
	stderrTTY bool
	cfg       *Config // the configuration file (contexts, FTP logins)
	cfgPath   string
	token     string // from the context (FERRY_TOKEN and --token-file come first)
	quiet     bool   // -q: only errors
	verbose   bool   // -v: the mode story, a line per file and per retry
	now       func() time.Time

	conn    *grpc.ClientConn
	client  ferryv1.AgentServiceClient
	reached atomic.Bool // some RPC got an answer from the agent
}

// run executes ferryctl with args and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, stderrTTY bool) int {
	a := &app{stdout: stdout, stderr: stderr, stderrTTY: stderrTTY, now: time.Now}
	defer a.close()
	root := a.newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if !errors.As(err, &ee) {
		// Everything a RunE returns is already an exitError: the rest comes from cobra's own
		// parsing (unknown flag or command, wrong number of arguments).
		ee = &exitError{code: exitUsage, err: err}
	}
	if !ee.silent {
		msg := render.OneLine(strings.Replace(ee.Error(), "\n\nDid you mean this?\n\t", "; did you mean: ", 1))
		if ee.code == exitUsage && cmd != nil && !isRemote(ee) {
			msg += fmt.Sprintf(" (see '%s --help')", cmd.CommandPath())
		}
		fmt.Fprintf(stderr, "ferryctl: %s\n", msg)
	}
	return ee.code
}

// remoteError marks an error whose text comes from the agent.
type remoteError struct{ error }

func isRemote(ee *exitError) bool {
	var re remoteError
	return errors.As(ee.err, &re)
}

func (a *app) newRootCmd() *cobra.Command {
	agentDefault := os.Getenv("FERRY_AGENT")
	if agentDefault == "" {
		agentDefault = defaultAgent
	}
	root := &cobra.Command{
		Use:   "ferryctl",
		Short: "Drive ferry-agents: copy files over FTP, watch and manage transfers",
		Long: `ferryctl drives a ferry-agent over its gRPC API (proto/ferry/v1).

Endpoints (SRC, DST, URL) are one of:
  a path under the agent's root     incoming/a.bin (a trailing / on DST means "into this directory")
  an FTP URL                        ftp://user:pass@host:port/path (plain)
  an FTPS URL                       ftpes://... (explicit, AUTH TLS) or ftps://... (implicit, port 990)
  another agent                     agent://host:grpcport/path

Output: -o text (default) is for people; -o json prints protojson objects with proto field
names, one per line, enum values by name (e.g. "TRANSFER_STATE_SUCCEEDED").

Exit codes:
  0    success
  1    transfer failed or was cancelled by someone else, or another error
  2    usage error, or the agent rejected the request as invalid (InvalidArgument)
  3    agent unreachable
  4    not found (transfer, file or directory)
  130  interrupted (Ctrl-C or SIGTERM; copy cancels its transfer first)

Authentication: every call carries the token in FERRY_TOKEN, or the one in --token-file
(FERRY_TOKEN_FILE; a bare token or a "ROLE TOKEN" line, such as the admin.token an agent
creates in its state directory). --ca (FERRY_CA) turns on TLS and verifies the agent against
that CA; --cert/--key (FERRY_CERT, FERRY_KEY) present a client certificate.

Agents by name: a configuration file (~/.config/ferry/config.yaml or FERRY_CONFIG) holds
contexts (address, token file, CA) and FTP logins; see 'ferryctl config --help'. --agent NAME
picks a context; a host without a port means port 7070. FTP URLs without a user take their
login from the configuration or ~/.netrc.

Errors are one line on stderr: "ferryctl: <cause>". -q prints only errors; -v adds how the
mode was chosen, a line per file and each retry. The user's guide: docs/ferryctl.md.`,
		Example: `  ferryctl --token-file /var/lib/ferry-agent/admin.token agent info
  FERRY_TOKEN=$(cat admin.token) ferryctl --agent 127.0.0.1:17070 copy agent://127.0.0.1:17071/big.bin in/big.bin -o json
  ferryctl --agent agent1.example:7070 --ca fleet-ca.pem --cert ops.pem --key ops.key transfers list
  FERRY_AGENT=unix:///run/ferry/agent.sock ferryctl transfers list --state running
  ferryctl agent info`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			f, err := render.ParseFormat(a.output)
			if err != nil {
				return usageErrorf("%v", err)
			}
			a.format = f
			if strings.TrimSpace(a.agent) == "" {
				return usageErrorf("--agent must not be empty")
			}
			if a.timeout < 0 {
				return usageErrorf("--timeout must not be negative")
			}
			if a.quiet && a.verbose {
				return usageErrorf("-q and -v exclude each other")
			}
			return a.applyContext(cmd)
		},
	}
	root.Version = clientVersion()
	root.SetVersionTemplate("ferryctl {{.Version}} (api " + apiVersion + ")\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &exitError{code: exitUsage, err: err}
	})
	pf := root.PersistentFlags()
	pf.StringVar(&a.agent, "agent", agentDefault,
		"agent: a context name from the config file, or a gRPC address host[:port] (port 7070 when none) or unix:///path/to.sock (env FERRY_AGENT)")
	pf.StringVarP(&a.output, "output", "o", "text", "output format: text or json")
	pf.DurationVar(&a.timeout, "timeout", 10*time.Second, "timeout of each request to the agent (0: none)")
	pf.StringVar(&a.tokenFile, "token-file", os.Getenv("FERRY_TOKEN_FILE"), "file holding the API token (env FERRY_TOKEN_FILE; FERRY_TOKEN gives the token itself)")
	pf.StringVar(&a.caFile, "ca", os.Getenv("FERRY_CA"), "CA certificate (PEM) to verify the agent with; turns on TLS (env FERRY_CA)")
	pf.StringVar(&a.certFile, "cert", os.Getenv("FERRY_CERT"), "client certificate (PEM) for mutual TLS (env FERRY_CERT)")
	pf.StringVar(&a.keyFile, "key", os.Getenv("FERRY_KEY"), "private key of --cert (env FERRY_KEY)")
	pf.BoolVarP(&a.quiet, "quiet", "q", false, "print only errors (text output)")
	pf.BoolVarP(&a.verbose, "verbose", "v", false, "also print how the data-connection mode was chosen, a line per file and each retry with its cause")

	root.AddCommand(a.newVersionCmd(), newManCmd(root), a.newConfigCmd(), a.newCopyCmd(), a.newSyncCmd(), a.newTransfersCmd(), a.newLsCmd(), a.newAgentCmd(), a.newDoctorCmd(),
		a.newFleetCmd())
	a.completions(root)
	return root
}

// groupCmd is a command that only holds subcommands; with an argument that is no subcommand
// it is a usage error, without one it prints its help.
func groupCmd(use, short, example string) *cobra.Command {
	return &cobra.Command{
		Use:     use,
		Short:   short,
		Example: example,
		Args:    cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return cmd.Help()
		},
	}
}

// exactArgs is cobra.ExactArgs naming the expected arguments.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != len(names) {
			return usageErrorf("want %d argument(s) %s, got %d", len(names), strings.Join(names, " "), len(args))
		}
		return nil
	}
}

// runE wraps a command body so that every error it returns is classified (exit code, message).
func (a *app) runE(fn func(ctx context.Context, cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		if err := fn(ctx, cmd, args); err != nil {
			return a.classify(ctx, err)
		}
		return nil
	}
}

// dialOptions are the gRPC options for reaching the agent: TLS when --ca or --cert is given,
// and the bearer token (FERRY_TOKEN, else --token-file) with every call.
func (a *app) dialOptions() ([]grpc.DialOption, error) {
	opts := []grpc.DialOption{grpc.WithUserAgent("ferryctl")}
	if a.caFile != "" || a.certFile != "" {
		tc, err := security.ClientTLS(a.caFile, a.certFile, a.keyFile)
		if err != nil {
			return nil, usageErrorf("--ca/--cert/--key: %v", err)
		}
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	} else {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	token := os.Getenv("FERRY_TOKEN")
	if token == "" && a.tokenFile == "" {
		token = a.token
	}
	if token == "" && a.tokenFile != "" {
		t, err := security.ReadClientToken(a.tokenFile)
		if err != nil {
			return nil, usageErrorf("--token-file: %v", err)
		}
		token = t
	}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(security.BearerToken(strings.TrimSpace(token))))
	}
	return opts, nil
}

// api returns the agent client, creating the connection on first use. grpc.NewClient does not
// connect; the first RPC does, so an unreachable agent shows up as that RPC's error.
func (a *app) api() (ferryv1.AgentServiceClient, error) {
	if a.client != nil {
		return a.client, nil
	}
	opts, err := a.dialOptions()
	if err != nil {
		return nil, err
	}
	a.agent = agentTarget(a.agent)
	conn, err := grpc.NewClient(a.agent, opts...)
	if err != nil {
		return nil, usageErrorf("--agent %q: %v", a.agent, err)
	}
	a.conn, a.client = conn, ferryv1.NewAgentServiceClient(conn)
	return a.client, nil
}

func (a *app) close() {
	if a.conn != nil {
		_ = a.conn.Close()
	}
}

// reachedAgent tells an answer from the agent (its own Unavailable, say, about a peer) from a
// failure to reach it at all.
func (a *app) reachedAgent() bool {
	return a.reached.Load() || (a.conn != nil && a.conn.GetState() == connectivity.Ready)
}

// unary returns the context for one unary call: bounded by --timeout.
func (a *app) unary(ctx context.Context) (context.Context, context.CancelFunc) {
	if a.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, a.timeout)
}

// call runs one unary RPC under --timeout and records that the agent answered.
func call[Req, Resp any](ctx context.Context, a *app, rpc func(ferryv1.AgentServiceClient, context.Context, Req, ...grpc.CallOption) (Resp, error), req Req) (Resp, error) {
	var zero Resp
	c, err := a.api()
	if err != nil {
		return zero, err
	}
	cctx, cancel := a.unary(ctx)
	defer cancel()
	resp, err := rpc(c, cctx, req)
	if err == nil {
		a.reached.Store(true)
	}
	return resp, err
}

// printJSON writes m as one line of protojson.
func (a *app) printJSON(m proto.Message) error {
	return render.WriteJSON(a.stdout, m)
}

// parseMode maps --mode to the API; when the flag was not given the agent's default applies.
func parseMode(flags *pflag.FlagSet, value string) (ferryv1.TransferMode, error) {
	if !flags.Changed("mode") {
		return ferryv1.TransferMode_TRANSFER_MODE_UNSPECIFIED, nil
	}
	switch strings.ToLower(value) {
	case "passive":
		return ferryv1.TransferMode_TRANSFER_MODE_PASSIVE, nil
	case "active":
		return ferryv1.TransferMode_TRANSFER_MODE_ACTIVE, nil
	case "auto":
		return ferryv1.TransferMode_TRANSFER_MODE_AUTO, nil
	}
	return 0, usageErrorf("invalid --mode %q: want active, passive or auto", value)
}

const modeUsage = "FTP data-connection mode: active, passive or auto (not given: the agent's default, auto)"
