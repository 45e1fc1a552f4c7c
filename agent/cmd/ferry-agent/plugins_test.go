package main

import (
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/agent/daemon"
	"github.com/ferry-dev/ferry/agent/ftpserver"
)

func parsePluginFlags(t *testing.T, args ...string) (daemon.Config, error) {
	t.Helper()
	var cfg daemon.Config
	var p pluginFlagSet
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	p.register(fs, &cfg)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return cfg, p.apply(&cfg)
}

func TestPluginFlags(t *testing.T) {
	sum := strings.Repeat("AB", 32)
	cfg, err := parsePluginFlags(t, "--plugin", "/p/auth -file '/etc/ferry/my users'", "--plugin", "/p/hook",
		"--plugin-sha256", "/p/hook="+sum, "--plugin-fail", "/p/hook=open", "--ftp-auth-order", "plugins,users,grants")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Plugins) != 2 || cfg.Plugins[0].Args[1] != "/etc/ferry/my users" || cfg.Plugins[0].FailOpen ||
		!cfg.Plugins[1].FailOpen || cfg.Plugins[1].SHA256 != strings.ToLower(sum) || cfg.Plugins[0].SHA256 != "" {
		t.Errorf("plugins: %+v", cfg.Plugins)
	}
	if len(cfg.FTPAuthOrder) != 3 || cfg.FTPAuthOrder[0] != ftpserver.AuthPlugins {
		t.Errorf("auth order: %v", cfg.FTPAuthOrder)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--plugin-sha256", "/p/x=" + sum}, `--plugin-sha256: no --plugin has the path "/p/x"`},
		{[]string{"--plugin", "/p/x", "--plugin-sha256", "/p/x=abc"}, "--plugin-sha256: want 64 hex digits"},
		{[]string{"--plugin", "/p/x", "--plugin-fail", "/p/x=maybe"}, "--plugin-fail: want open or closed"},
		{[]string{"--plugin", "/p/x 'unterminated"}, "--plugin"},
		{[]string{"--ftp-auth-order", "users,ldap"}, `--ftp-auth-order: unknown source "ldap"`},
		{[]string{"--plugin-timeout", "0s"}, "--plugin-timeout"},
	} {
		if _, err := parsePluginFlags(t, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.args, err, c.want)
		}
	}
}
