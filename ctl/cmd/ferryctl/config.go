package main

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Config is ferryctl's configuration file (~/.config/ferry/config.yaml, or $FERRY_CONFIG):
// named agents (contexts), the current one, and FTP credentials per host.
//
//	current-context: prod
//	contexts:
//	  prod:
//	    address: agent1.example:7070
//	    token-file: ~/.config/ferry/prod.token
//	    ca: ~/.config/ferry/fleet-ca.pem
//	ftp:
//	  - host: files.example.com
//	    user: alice
//	    password-file: ~/.config/ferry/alice.pw
type Config struct {
	CurrentContext string              `yaml:"current-context,omitempty"`
	Contexts       map[string]*Context `yaml:"contexts,omitempty"`
	FTP            []FTPLogin          `yaml:"ftp,omitempty"`
}

// Context is one agent and how to reach it.
type Context struct {
	Address   string `yaml:"address"`
	Token     string `yaml:"token,omitempty"`
	TokenFile string `yaml:"token-file,omitempty"`
	CA        string `yaml:"ca,omitempty"`
	Cert      string `yaml:"cert,omitempty"`
	Key       string `yaml:"key,omitempty"`
}

// FTPLogin is the user and password ferryctl puts into ftp://, ftpes:// and ftps:// URLs for
// host (a name or host:port) when the URL names no user.
type FTPLogin struct {
	Host         string `yaml:"host"`
	User         string `yaml:"user"`
	Password     string `yaml:"password,omitempty"`
	PasswordFile string `yaml:"password-file,omitempty"`
}

// configPath is $FERRY_CONFIG, else ~/.config/ferry/config.yaml (XDG_CONFIG_HOME honoured).
func configPath() string {
	if p := os.Getenv("FERRY_CONFIG"); p != "" {
		return p
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "ferry", "config.yaml")
}

// loadConfig reads the configuration; a missing file is an empty one.
func loadConfig(path string) (*Config, error) {
	c := &Config{}
	if path == "" {
		return c, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, err
	}
	if err := yaml.Unmarshal(b, c); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	for name, ctx := range c.Contexts {
		if ctx == nil || strings.TrimSpace(ctx.Address) == "" {
			return nil, fmt.Errorf("%s: context %q: address is empty", path, name)
		}
	}
	if c.CurrentContext != "" && c.Contexts[c.CurrentContext] == nil {
		return nil, fmt.Errorf("%s: current-context %q is not among the contexts", path, c.CurrentContext)
	}
	return c, nil
}

func (c *Config) save(path string) error {
	if path == "" {
		return errors.New("no configuration path (set FERRY_CONFIG or HOME)")
	}
	b, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func (c *Config) contextNames() []string {
	var names []string
	for n := range c.Contexts {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// expand resolves a leading ~/ in a configured path.
func expand(p string) string {
	if strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[2:])
		}
	}
	return p
}

// redacted is the configuration as `config view` shows it: tokens and passwords replaced.
func (c *Config) redacted() *Config {
	out := &Config{CurrentContext: c.CurrentContext, Contexts: map[string]*Context{}}
	for n, ctx := range c.Contexts {
		cp := *ctx
		if cp.Token != "" {
			cp.Token = "xxxxx"
		}
		out.Contexts[n] = &cp
	}
	for _, l := range c.FTP {
		if l.Password != "" {
			l.Password = "xxxxx"
		}
		out.FTP = append(out.FTP, l)
	}
	return out
}

// ftpLogin finds the user and password for host:port: the configuration first, then ~/.netrc
// ($NETRC), matched by host:port or by host alone.
func (a *app) ftpLogin(hostport string) (user, pass string, ok bool, err error) {
	host, _, _ := net.SplitHostPort(hostport)
	for _, l := range a.cfg.FTP {
		if l.Host == hostport || l.Host == host {
			pass = l.Password
			if l.PasswordFile != "" {
				b, err := os.ReadFile(expand(l.PasswordFile))
				if err != nil {
					return "", "", false, fmt.Errorf("ftp login for %s: password-file: %v", l.Host, err)
				}
				pass = strings.TrimRight(string(b), "\r\n")
			}
			return l.User, pass, true, nil
		}
	}
	return netrcLogin(host)
}

// netrcLogin reads ~/.netrc (or $NETRC): "machine HOST login USER password PASS" entries, and
// "default". Only the tokens machine, default, login, password (and account, macdef skipped).
func netrcLogin(host string) (user, pass string, ok bool, err error) {
	path := os.Getenv("NETRC")
	if path == "" {
		home, herr := os.UserHomeDir()
		if herr != nil {
			return "", "", false, nil
		}
		path = filepath.Join(home, ".netrc")
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", "", false, nil
	}
	if err != nil {
		return "", "", false, fmt.Errorf("netrc: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Split(bufio.ScanWords)
	var words []string
	for sc.Scan() && len(words) < 100000 {
		words = append(words, sc.Text())
	}
	var cur string // machine being read; "*" for default
	var found, dflt [2]string
	var haveFound, haveDefault bool
	for i := 0; i < len(words); i++ {
		switch words[i] {
		case "machine":
			if i+1 < len(words) {
				cur = words[i+1]
				i++
			}
		case "default":
			cur = "*"
		case "login", "password", "account":
			if i+1 >= len(words) {
				break
			}
			k, v := words[i], words[i+1]
			i++
			var dst *[2]string
			switch cur {
			case host:
				dst, haveFound = &found, true
			case "*":
				dst, haveDefault = &dflt, true
			default:
				continue
			}
			if k == "login" {
				dst[0] = v
			} else if k == "password" {
				dst[1] = v
			}
		}
	}
	switch {
	case haveFound:
		return found[0], found[1], true, nil
	case haveDefault:
		return dflt[0], dflt[1], true, nil
	}
	return "", "", false, nil
}

// withCredentials puts the configured (or ~/.netrc) user and password into an FTP URL that
// names no user, so that passwords need not be typed on the command line. Other endpoints are
// returned as they are.
func (a *app) withCredentials(endpoint string) (string, error) {
	scheme, rest, ok := strings.Cut(endpoint, "://")
	if !ok || (scheme != "ftp" && scheme != "ftpes" && scheme != "ftps") {
		return endpoint, nil
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.User != nil {
		return endpoint, nil // the agent explains a bad URL; a URL with a user is used as given
	}
	_ = rest
	port := map[string]string{"ftp": "21", "ftpes": "21", "ftps": "990"}[scheme]
	hostport := u.Host
	if u.Port() == "" {
		hostport = net.JoinHostPort(u.Hostname(), port)
	}
	user, pass, found, err := a.ftpLogin(hostport)
	if err != nil {
		return "", usageErrorf("%v", err)
	}
	if !found {
		return endpoint, nil
	}
	u.User = url.UserPassword(user, pass)
	return u.String(), nil
}
