package main

import (
	"bufio"
	"debug/elf"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/ferry-dev/ferry/agent/config"
)

// repoRoot is the repository's top directory, seen from this package's (agent/cmd/ferry-agent).
const repoRoot = "../../.."

// The packaging files (dist/) are checked against the agent's real flags: every key of the
// example configuration, every flag of the systemd unit's ExecStart, the Dockerfile's CMD and
// the DaemonSet's args, every FERRY_* variable they set. What cannot run here (systemd, a
// container runtime, a cluster) is at least parsed and held to the flag set.

// loadConfig loads a configuration file into the real flag set, as ferry-agent would, and checks
// the values as it would before starting.
func loadConfig(t *testing.T, file string, args []string, env map[string]string) *options {
	t.Helper()
	fs, o := newFlags()
	src, err := config.Load(fs, append([]string{"--config", file}, args...), func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if _, err := o.daemonConfig(fs); err != nil {
		t.Fatalf("%s: %v", file, src.Annotate(err))
	}
	return o
}

// parseArgs checks args against the real flags.
func parseArgs(t *testing.T, where string, args []string) *options {
	t.Helper()
	fs, o := newFlags()
	fs.SetOutput(new(strings.Builder))
	if err := fs.Parse(args); err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	if fs.NArg() > 0 {
		t.Fatalf("%s: stray argument %q", where, fs.Arg(0))
	}
	return o
}

// envFlag checks that a FERRY_* variable names a real flag.
func envFlag(t *testing.T, where, name string) {
	t.Helper()
	fs, _ := newFlags()
	ok := false
	fs.VisitAll(func(f *flag.Flag) {
		if config.EnvName(f.Name) == name {
			ok = true
		}
	})
	if !ok && name != config.EnvPrefix+"CONFIG" {
		t.Errorf("%s: %s is no ferry-agent flag's variable", where, name)
	}
}

func TestExampleConfig(t *testing.T) {
	o := loadConfig(t, repoRoot+"/dist/ferry-agent.yaml", nil, nil)
	if o.cfg.Root != "/srv/ferry" || o.cfg.StateDir != "/var/lib/ferry-agent" || o.cfg.AuditLog == "" {
		t.Errorf("example config: root %q, state %q, audit %q", o.cfg.Root, o.cfg.StateDir, o.cfg.AuditLog)
	}
}

// unit reads a systemd unit: key -> values (keys may repeat).
func unit(t *testing.T, file string) map[string][]string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: bad line %q", file, line)
		}
		out[k] = append(out[k], v)
	}
	return out
}

func TestSystemdUnit(t *testing.T) {
	u := unit(t, repoRoot+"/dist/ferry-agent.service")
	argv := strings.Fields(u["ExecStart"][0])
	if argv[0] != "/usr/local/bin/ferry-agent" {
		t.Errorf("ExecStart runs %s", argv[0])
	}
	o := parseArgs(t, "ExecStart", argv[1:])
	if o.configFile != "/etc/ferry/agent.yaml" {
		t.Errorf("ExecStart's --config = %q", o.configFile)
	}
	cfg := loadConfig(t, repoRoot+"/dist/ferry-agent.yaml", nil, nil).cfg
	for k, want := range map[string]string{
		"User": "ferry", "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
		"PrivateTmp": "yes", "StateDirectory": "ferry-agent", "KillSignal": "SIGTERM", "CapabilityBoundingSet": "",
		"ReadWritePaths": cfg.Root, "LogsDirectory": "ferry-agent", "ConfigurationDirectory": "ferry",
	} {
		if got := u[k]; len(got) == 0 || got[0] != want {
			t.Errorf("unit: %s = %v, want %q", k, got, want)
		}
	}
	// The example configuration writes only where the unit lets it.
	if cfg.StateDir != "/var/lib/"+u["StateDirectory"][0] {
		t.Errorf("state-dir %s is not the unit's StateDirectory", cfg.StateDir)
	}
	if filepath.Dir(cfg.AuditLog) != "/var/log/"+u["LogsDirectory"][0] {
		t.Errorf("audit-log %s is not in the unit's LogsDirectory", cfg.AuditLog)
	}
	// sysusers creates the unit's user.
	b, err := os.ReadFile(repoRoot + "/dist/ferry-agent.sysusers")
	if err != nil || !strings.Contains(string(b), "u ferry ") {
		t.Errorf("sysusers: %v %q", err, b)
	}
	// systemd's own parser, where systemd is installed: no unknown directive.
	if path, err := lookPath("systemd-analyze"); err == nil {
		out, _ := execCommand(path, "verify", "--man=no", repoRoot+"/dist/ferry-agent.service").CombinedOutput()
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "Unknown key") || strings.Contains(line, "Unknown section") || strings.Contains(line, "Failed to parse") {
				t.Errorf("systemd-analyze verify: %s", line)
			}
		}
	}
}

var (
	lookPath    = exec.LookPath
	execCommand = exec.Command
)

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile(repoRoot + "/dist/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var entry, cmd []string
	var expose []string
	var run string
	for _, line := range strings.Split(strings.ReplaceAll(string(b), "\\\n", " "), "\n") {
		instr, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch instr {
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(rest), &entry); err != nil {
				t.Fatalf("ENTRYPOINT: %v", err)
			}
		case "CMD":
			if err := json.Unmarshal([]byte(rest), &cmd); err != nil {
				t.Fatalf("CMD: %v", err)
			}
		case "EXPOSE":
			expose = strings.Fields(rest)
		case "RUN":
			run += rest + "\n"
		}
	}
	if len(entry) != 1 || entry[0] != "/usr/local/bin/ferry-agent" {
		t.Errorf("ENTRYPOINT %v", entry)
	}
	if o := parseArgs(t, "CMD", cmd); o.configFile == "" {
		t.Error("CMD gives no --config")
	}
	cfg := loadConfig(t, repoRoot+"/dist/ferry-agent.yaml", nil, nil)
	for _, p := range []string{"7070", "2121", cfg.passive, "9464"} {
		if !strings.Contains(" "+strings.Join(expose, " ")+" ", " "+p+" ") {
			t.Errorf("EXPOSE %v lacks %s", expose, p)
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-X github.com/ferry-dev/ferry/agent/daemon.Version=", "./agent/cmd/ferry-agent", "./ctl/cmd/ferryctl"} {
		if !strings.Contains(run, want) {
			t.Errorf("Dockerfile's build lacks %q", want)
		}
	}
}

func TestDaemonSet(t *testing.T) {
	f, err := os.Open(repoRoot + "/dist/kubernetes/daemonset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var conf string
	var container map[string]any
	kinds := map[string]bool{}
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatal(err)
		}
		kinds[doc["kind"].(string)] = true
		switch doc["kind"] {
		case "ConfigMap":
			conf = doc["data"].(map[string]any)["agent.yaml"].(string)
		case "DaemonSet":
			spec := doc["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
			container = spec["containers"].([]any)[0].(map[string]any)
		}
	}
	if !kinds["DaemonSet"] || !kinds["ConfigMap"] || conf == "" || container == nil {
		t.Fatalf("kinds %v", kinds)
	}
	var args []string
	for _, a := range container["args"].([]any) {
		args = append(args, a.(string))
	}
	o := parseArgs(t, "DaemonSet args", args)
	env := map[string]string{}
	for _, e := range container["env"].([]any) {
		name := e.(map[string]any)["name"].(string)
		envFlag(t, "DaemonSet env", name)
		env[name] = "192.0.2.1"
	}
	file := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := loadConfig(t, file, nil, env)
	// Mounts put the config where --config looks, and the files it names under the secret.
	mounts := map[string]bool{}
	for _, m := range container["volumeMounts"].([]any) {
		mounts[m.(map[string]any)["mountPath"].(string)] = true
	}
	if !mounts[o.configFile] || !mounts[cfg.cfg.Root] || !mounts[cfg.cfg.StateDir] {
		t.Errorf("mounts %v miss the config %s, root or state dir", mounts, o.configFile)
	}
	for _, p := range []string{cfg.cfg.TokenFile, cfg.cfg.TLSCert, cfg.cfg.PeerTokenFile} {
		if !mounts[filepath.Dir(p)] {
			t.Errorf("%s is not under a mount", p)
		}
	}
	// The probes hit /healthz on the metrics port.
	_, port, _ := strings.Cut(cfg.cfg.MetricsListen, ":")
	probe := container["readinessProbe"].(map[string]any)["httpGet"].(map[string]any)
	if probe["path"] != "/healthz" || probe["port"] != mustAtoi(t, port) {
		t.Errorf("readiness probe %v, metrics on %s", probe, cfg.cfg.MetricsListen)
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	for _, c := range s {
		if c < '0' || c > '9' {
			t.Fatalf("not a port: %q", s)
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// TestMakeInstall: make install into a DESTDIR puts static binaries (ferry-agent version-stamped), the unit
// (ExecStart pointing at the installed binary), the sysusers file and the example config in
// place.
func TestMakeInstall(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatal("make is needed (see .ci/run)")
	}
	dest := t.TempDir()
	cmd := exec.Command("make", "-C", repoRoot, "install", "DESTDIR="+dest, "PREFIX=/usr", "VERSION=v9.8.7-test")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	for _, bin := range []string{"ferry-agent", "ferryctl"} {
		p := filepath.Join(dest, "usr/bin", bin)
		f, err := elf.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				t.Errorf("%s is dynamically linked", bin)
			}
		}
		f.Close()
	}
	// ferryctl's --version is the CLI's (-X main.version, ctl/cmd/ferryctl/version.go).
	out, err := exec.Command(filepath.Join(dest, "usr/bin/ferry-agent"), "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "v9.8.7-test") {
		t.Errorf("ferry-agent --version: %v %q", err, out)
	}
	u := unit(t, filepath.Join(dest, "usr/lib/systemd/system/ferry-agent.service"))
	if !strings.HasPrefix(u["ExecStart"][0], "/usr/bin/ferry-agent --config /etc/ferry/agent.yaml") {
		t.Errorf("installed ExecStart %q", u["ExecStart"][0])
	}
	for _, p := range []string{"usr/lib/sysusers.d/ferry-agent.conf", "etc/ferry/agent.yaml"} {
		if _, err := os.Stat(filepath.Join(dest, p)); err != nil {
			t.Error(err)
		}
	}
}
