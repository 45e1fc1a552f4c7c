package main

import (
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/ferry-dev/ferry/agent/daemon"
	"github.com/ferry-dev/ferry/agent/ftpserver"
	"github.com/ferry-dev/ferry/agent/pluginhost"
)

// pluginFlagSet holds the plugin flags (docs/plugins.md) until they are turned into cfg.
type pluginFlagSet struct {
	plugins, sha256, fail multiFlag
	authOrder             string
}

func (p *pluginFlagSet) register(fs *flag.FlagSet, cfg *daemon.Config) {
	fs.Var(&p.plugins, "plugin", "'PATH [ARGS…]': run a plugin (auth: FTP logins; hook: transfer and FTP events, vetoes); repeatable, e.g. --plugin '/usr/lib/ferry/auth-htpasswd -file /etc/ferry/ftp.htpasswd'. Keep secrets in files the plugin reads, not in ARGS (see docs/plugins.md)")
	fs.Var(&p.sha256, "plugin-sha256", "PATH=HEX: start the plugin PATH only if its binary's SHA-256 is HEX (sha256sum PATH); repeatable")
	fs.Var(&p.fail, "plugin-fail", "PATH=open|closed: while hook plugin PATH is down or errs, its checks allow (open) or refuse (closed, the default); auth plugins always fail closed; repeatable")
	fs.DurationVar(&cfg.PluginTimeout, "plugin-timeout", 5*time.Second, "time allowed for each call to a plugin (a login check, an event, a veto)")
	fs.StringVar(&p.authOrder, "ftp-auth-order", "grants,users,plugins", "order in which FTP logins are checked: grants (one-time credentials of peer agents), users (--ftp-user, --ftp-users-file), plugins (auth plugins in --plugin order); the first source that knows the user decides; a source left out is not asked")
}

// apply checks the plugin flags and fills cfg. PATH in --plugin-sha256 and --plugin-fail is
// the plugin's first word exactly as --plugin gives it.
func (p *pluginFlagSet) apply(cfg *daemon.Config) error {
	byPath := map[string][]int{}
	for _, s := range p.plugins {
		spec, err := pluginhost.ParseSpec(s)
		if err != nil {
			return fmt.Errorf("--plugin %q: %w", s, err)
		}
		byPath[spec.Path] = append(byPath[spec.Path], len(cfg.Plugins))
		cfg.Plugins = append(cfg.Plugins, spec)
	}
	for _, v := range p.sha256 {
		path, sum, err := pluginhost.ParsePathValue(v)
		if err == nil {
			err = pluginhost.CheckSHA256(sum)
		}
		if err != nil {
			return fmt.Errorf("--plugin-sha256: %w", err)
		}
		idx, ok := byPath[path]
		if !ok {
			return fmt.Errorf("--plugin-sha256: no --plugin has the path %q", path)
		}
		for _, i := range idx {
			cfg.Plugins[i].SHA256 = strings.ToLower(sum)
		}
	}
	for _, v := range p.fail {
		path, mode, err := pluginhost.ParsePathValue(v)
		var open bool
		if err == nil {
			open, err = pluginhost.ParseFail(mode)
		}
		if err != nil {
			return fmt.Errorf("--plugin-fail: %w", err)
		}
		idx, ok := byPath[path]
		if !ok {
			return fmt.Errorf("--plugin-fail: no --plugin has the path %q", path)
		}
		for _, i := range idx {
			cfg.Plugins[i].FailOpen = open
		}
	}
	if cfg.PluginTimeout <= 0 {
		return fmt.Errorf("--plugin-timeout: want a positive duration, got %s", cfg.PluginTimeout)
	}
	order, err := ftpserver.ParseAuthOrder(strings.Split(p.authOrder, ","))
	if err != nil {
		return fmt.Errorf("--ftp-auth-order: %w", err)
	}
	cfg.FTPAuthOrder = order
	return nil
}
