package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
)

// applyContext loads the configuration file and picks the agent: --agent NAME (a context),
// --agent ADDRESS, FERRY_AGENT, the current context, else 127.0.0.1:7070. A context also
// supplies the token, CA and client certificate unless flags or the environment give them.
func (a *app) applyContext(cmd *cobra.Command) error {
	a.cfgPath = configPath()
	cfg, err := loadConfig(a.cfgPath)
	if err != nil {
		return usageErrorf("config: %v", err)
	}
	a.cfg = cfg
	name := ""
	switch {
	case cfg.Contexts[a.agent] != nil:
		name = a.agent
	case !cmd.Flags().Changed("agent") && os.Getenv("FERRY_AGENT") == "" && cfg.CurrentContext != "":
		name = cfg.CurrentContext
	}
	if name == "" {
		return nil
	}
	c := cfg.Contexts[name]
	a.agent = c.Address
	if a.tokenFile == "" {
		a.tokenFile = expand(c.TokenFile)
		a.token = c.Token
	}
	if a.caFile == "" {
		a.caFile = expand(c.CA)
	}
	if a.certFile == "" {
		a.certFile, a.keyFile = expand(c.Cert), expand(c.Key)
	}
	return nil
}

// endpoints completes both endpoints with FTP credentials from the config or ~/.netrc.
func (a *app) endpoints(x, y string) (string, string, error) {
	x, err := a.withCredentials(x)
	if err != nil {
		return "", "", err
	}
	y, err = a.withCredentials(y)
	return x, y, err
}

func (a *app) newConfigCmd() *cobra.Command {
	cmd := groupCmd("config", "View and change ferryctl's contexts (named agents) and FTP logins",
		`  ferryctl config set-context prod --address agent1.example:7070 --token-file ~/.config/ferry/prod.token --ca ~/.config/ferry/ca.pem
  ferryctl config use-context prod
  ferryctl config view
  ferryctl --agent staging transfers list`)
	cmd.Long = `The configuration file is ~/.config/ferry/config.yaml, or $FERRY_CONFIG. It names agents
(contexts: address, token or token-file, ca, cert, key), the current context, and FTP logins
per host, which ferryctl puts into ftp://, ftpes:// and ftps:// URLs that name no user (after
those, ~/.netrc or $NETRC is read), so that no password is typed on the command line:

  current-context: prod
  contexts:
    prod:
      address: agent1.example:7070
      token-file: ~/.config/ferry/prod.token
      ca: ~/.config/ferry/fleet-ca.pem
  ftp:
    - host: files.example.com
      user: alice
      password-file: ~/.config/ferry/alice.pw

--agent NAME picks a context; --agent HOST[:PORT] an address (port 7070 when none). Without
--agent (and FERRY_AGENT), the current context is used, else 127.0.0.1:7070. Flags and
environment variables (FERRY_TOKEN, --token-file, --ca...) win over the context's values.`
	cmd.AddCommand(a.newConfigViewCmd(), a.newUseContextCmd(), a.newSetContextCmd(), a.newGetContextsCmd())
	return cmd
}

func (a *app) newConfigViewCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "view",
		Short:   "Print the configuration, tokens and passwords hidden",
		Example: "  ferryctl config view",
		Args:    exactArgs(),
		RunE: a.runE(func(context.Context, *cobra.Command, []string) error {
			b, err := yaml.Marshal(a.cfg.redacted())
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "# %s\n%s", a.cfgPath, b)
			return nil
		}),
	}
}

func (a *app) newGetContextsCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "get-contexts",
		Short:   "List the contexts; * marks the current one",
		Example: "  ferryctl config get-contexts",
		Args:    exactArgs(),
		RunE: a.runE(func(context.Context, *cobra.Command, []string) error {
			for _, n := range a.cfg.contextNames() {
				mark := " "
				if n == a.cfg.CurrentContext {
					mark = "*"
				}
				fmt.Fprintf(a.stdout, "%s %s\t%s\n", mark, n, a.cfg.Contexts[n].Address)
			}
			return nil
		}),
	}
}

func (a *app) newUseContextCmd() *cobra.Command {
	return &cobra.Command{
		Use:               "use-context NAME",
		Short:             "Make NAME the current context",
		Example:           "  ferryctl config use-context prod",
		Args:              exactArgs("NAME"),
		ValidArgsFunction: a.completeContexts,
		RunE: a.runE(func(_ context.Context, _ *cobra.Command, args []string) error {
			if a.cfg.Contexts[args[0]] == nil {
				return &exitError{code: exitNotFound, err: fmt.Errorf("no context %q in %s (have: %s)", args[0], a.cfgPath, strings.Join(a.cfg.contextNames(), ", "))}
			}
			a.cfg.CurrentContext = args[0]
			if err := a.cfg.save(a.cfgPath); err != nil {
				return fmt.Errorf("config: %w", err)
			}
			fmt.Fprintf(a.stdout, "current context: %s\n", args[0])
			return nil
		}),
	}
}

func (a *app) newSetContextCmd() *cobra.Command {
	var c Context
	cmd := &cobra.Command{
		Use:   "set-context NAME --address HOST:PORT [--token-file FILE] [--ca FILE] [--cert FILE --key FILE]",
		Short: "Add or change a context (a named agent)",
		Long: `set-context writes a context to the configuration file (mode 0600). Flags not given keep
the context's current values. Tokens are referenced by file, never given on the command line.`,
		Example:           "  ferryctl config set-context prod --address agent1.example:7070 --token-file ~/.config/ferry/prod.token",
		Args:              exactArgs("NAME"),
		ValidArgsFunction: a.completeContexts,
		RunE: a.runE(func(_ context.Context, cmd *cobra.Command, args []string) error {
			if a.cfg.Contexts == nil {
				a.cfg.Contexts = map[string]*Context{}
			}
			cur := a.cfg.Contexts[args[0]]
			if cur == nil {
				cur = &Context{}
			}
			f := cmd.Flags()
			for _, x := range []struct {
				flag string
				dst  *string
				val  string
			}{{"address", &cur.Address, c.Address}, {"token-file", &cur.TokenFile, c.TokenFile},
				{"ca", &cur.CA, c.CA}, {"cert", &cur.Cert, c.Cert}, {"key", &cur.Key, c.Key}} {
				if f.Changed(x.flag) {
					*x.dst = x.val
				}
			}
			if strings.TrimSpace(cur.Address) == "" {
				return usageErrorf("--address: a new context needs the agent's address")
			}
			a.cfg.Contexts[args[0]] = cur
			if a.cfg.CurrentContext == "" {
				a.cfg.CurrentContext = args[0]
			}
			if err := a.cfg.save(a.cfgPath); err != nil {
				return fmt.Errorf("config: %w", err)
			}
			fmt.Fprintf(a.stdout, "context %s: %s\n", args[0], cur.Address)
			return nil
		}),
	}
	// Local flags named like the global --ca/--cert/--key would shadow them: these set the
	// context's values only.
	cmd.Flags().StringVar(&c.Address, "address", "", "the agent's gRPC address, host:port or unix:///path")
	cmd.Flags().StringVar(&c.TokenFile, "token-file", "", "file holding the API token")
	cmd.Flags().StringVar(&c.CA, "ca", "", "CA certificate (PEM) that verifies the agent")
	cmd.Flags().StringVar(&c.Cert, "cert", "", "client certificate (PEM)")
	cmd.Flags().StringVar(&c.Key, "key", "", "private key of --cert")
	return cmd
}

func (a *app) completeContexts(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	cfg, err := loadConfig(configPath())
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return cfg.contextNames(), cobra.ShellCompDirectiveNoFileComp
}
