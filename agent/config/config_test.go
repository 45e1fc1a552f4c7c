package config

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }
func (l *list) Values() []string   { return *l }

type vals struct {
	config, root, listen, password string
	retries                        int
	anon                           bool
	stall                          time.Duration
	allow, plugin                  list
}

func flags() (*flag.FlagSet, *vals) {
	v := &vals{}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&v.config, "config", "", "")
	fs.StringVar(&v.root, "root", "", "")
	fs.StringVar(&v.listen, "grpc-listen", "127.0.0.1:7070", "")
	fs.StringVar(&v.password, "ldap-password", "", "")
	fs.IntVar(&v.retries, "retries", 5, "")
	fs.BoolVar(&v.anon, "anonymous-read", false, "")
	fs.DurationVar(&v.stall, "stall-timeout", time.Minute, "")
	fs.Var(&v.allow, "allow-remote", "rules")
	// A flag another room adds later, repeatable by its usage only.
	fs.Func("plugin", "plugin binary (repeatable)", func(s string) error { v.plugin = append(v.plugin, s); return nil })
	return fs, v
}

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// TestPrecedence: flags > environment > file > defaults, lists replace, every flag is reachable.
func TestPrecedence(t *testing.T) {
	file := write(t, `# agent
root: /srv/file
grpc-listen: 0.0.0.0:7070
retries: 2
anonymous-read: yes
stall-timeout: 90s
allow-remote:
  - 10.0.0.0/8
  - "ftp.example.com:21"
plugin: [/usr/lib/ferry/a, /usr/lib/ferry/b]
`)
	fs, v := flags()
	src, err := Load(fs, []string{"--config", file, "--retries", "9"},
		env(map[string]string{"FERRY_GRPC_LISTEN": "10.1.1.1:7070", "FERRY_RETRIES": "1", "FERRY_ALLOW_REMOTE": "192.0.2.0/24,198.51.100.7"}))
	if err != nil {
		t.Fatal(err)
	}
	if v.root != "/srv/file" || v.listen != "10.1.1.1:7070" || v.retries != 9 || !v.anon || v.stall != 90*time.Second {
		t.Errorf("values: %+v", v)
	}
	if got := strings.Join(v.allow, " "); got != "192.0.2.0/24 198.51.100.7" {
		t.Errorf("allow-remote = %q, want the environment's list alone", got)
	}
	if got := strings.Join(v.plugin, " "); got != "/usr/lib/ferry/a /usr/lib/ferry/b" {
		t.Errorf("plugin = %q", got)
	}
	for name, want := range map[string]string{"root": "file", "grpc-listen": "env", "retries": "flag", "ldap-password": "default", "allow-remote": "env"} {
		if src[name].Kind != want {
			t.Errorf("source of %s = %+v, want %s", name, src[name], want)
		}
	}
	if got := src.Where("root"); got != file+":2: root" {
		t.Errorf("Where(root) = %q", got)
	}
	// FERRY_CONFIG names the file when --config does not.
	fs, v = flags()
	if _, err := Load(fs, nil, env(map[string]string{"FERRY_CONFIG": file})); err != nil || v.root != "/srv/file" {
		t.Fatalf("FERRY_CONFIG: %v, root %q", err, v.root)
	}
}

// TestFileErrors: each mistake names the file, the line and the key.
func TestFileErrors(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{"root: /srv\ngrpc_listen: :7070\n", `:2: unknown key "grpc_listen" (did you mean "grpc-listen"?)`},
		{"root: /srv\n\nretires: 3\n", `:3: unknown key "retires" (did you mean "retries"?)`},
		{"colour: blue\n", `:1: unknown key "colour"`},
		{"retries: lots\n", `:1: retries: invalid value "lots"`},
		{"stall-timeout: 5\n", `:1: stall-timeout: invalid value "5"`},
		{"anonymous-read: maybe\n", `:1: anonymous-read: want true or false, got "maybe"`},
		{"root: [/a, /b]\n", `:1: root: want a single value, got a list`},
		{"root: /a\nroot: /b\n", `:2: key "root" given twice (first on line 1)`},
		{"root:\n  sub: x\n", `:1: root: want a value, got a mapping`},
		{"- root\n", `:1: want a mapping`},
		{"config: other.yaml\n", `:1: unknown key "config"`},
		{"root: [unclosed\n", `agent.yaml`},
	} {
		file := write(t, c.body)
		fs, _ := flags()
		_, err := Load(fs, []string{"--config", file}, env(nil))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), file) {
			t.Errorf("%q: err = %v, want it to name %s and contain %q", c.body, err, file, c.want)
		}
	}
	// An empty file is no error.
	fs, _ := flags()
	if _, err := Load(fs, []string{"--config", write(t, "# nothing yet\n")}, env(nil)); err != nil {
		t.Errorf("empty file: %v", err)
	}
}

// TestPrint: the effective configuration reads back as a file and masks secrets.
func TestPrint(t *testing.T) {
	fs, _ := flags()
	src, err := Load(fs, []string{"--root", "/srv x", "--ldap-password", "hunter2", "--allow-remote", "10.0.0.0/8", "--plugin", "/p"}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := Print(&b, fs, src); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.Contains(out, "hunter2") || !strings.Contains(out, "ldap-password: '*****'") {
		t.Errorf("password not masked:\n%s", out)
	}
	if strings.Contains(out, "config:") || !strings.Contains(out, "retries: 5 # default") {
		t.Errorf("print:\n%s", out)
	}
	// Read it back (without the masked password).
	back := strings.ReplaceAll(out, "ldap-password: '*****'", "ldap-password: x")
	fs2, v2 := flags()
	if _, err := Load(fs2, []string{"--config", write(t, back)}, env(nil)); err != nil {
		t.Fatalf("printed configuration does not load: %v\n%s", err, out)
	}
	if v2.root != "/srv x" || strings.Join(v2.allow, ",") != "10.0.0.0/8" || strings.Join(v2.plugin, ",") != "/p" {
		t.Errorf("read back: %+v", v2)
	}
}

func TestAnnotate(t *testing.T) {
	src := Sources{"root": {Kind: "file", Where: "a.yaml:3"}, "retries": {Kind: "env", Where: "FERRY_RETRIES"}}
	for in, want := range map[string]string{
		`root: "/x" is not a directory`: `a.yaml:3: root: "/x" is not a directory`,
		`--retries: want 0 or more`:     `FERRY_RETRIES (retries): want 0 or more`,
		`--state-dir: required`:         `--state-dir: required`,
		`no colon here`:                 `no colon here`,
	} {
		if got := src.Annotate(errorString(in)).Error(); got != want {
			t.Errorf("Annotate(%q) = %q, want %q", in, got, want)
		}
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }
