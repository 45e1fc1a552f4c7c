// Package config fills a flag.FlagSet from three sources besides the command line: a YAML file
// (--config FILE), environment variables (FERRY_<FLAG>, dashes as underscores) and the flags'
// defaults. Precedence: command line > environment > file > defaults.
//
// It works over whatever flags the set holds (flag.VisitAll, flag.Value.Set), so a flag added to
// ferry-agent later is settable from the file and the environment with no code here. A
// repeatable flag (a Value with a Values() []string method, or whose usage says "repeatable")
// takes a YAML list, or a comma-separated environment variable (newline-separated when the value
// holds a newline); one source replaces, never extends, the values of a lower one.
//
// The file is a flat YAML mapping whose keys are the flag names:
//
//	root: /srv/ferry
//	grpc-listen: 0.0.0.0:7070
//	allow-remote: [10.0.0.0/8, "ftp.example.com:21"]
//
// Unknown keys, duplicates, lists for single-valued flags and values a flag refuses fail with
// the file, the line and the key ("ferry.yaml:3: unknown key \"grpc_listen\" (did you mean
// \"grpc-listen\"?)").
package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// EnvPrefix starts every environment variable read by Load.
const EnvPrefix = "FERRY_"

// Meta flags steer loading and are never read from the file or the environment (except the
// config file's own FERRY_CONFIG).
var Meta = map[string]bool{"config": true, "print-config": true, "version": true, "help": true}

// Source says where a flag's value came from.
type Source struct {
	Kind  string // "flag", "env", "file" or "default"
	Where string // "--root", "FERRY_ROOT", "/etc/ferry/agent.yaml:3", ""
}

// Sources maps flag names to where their values came from.
type Sources map[string]Source

// Where names a flag's origin for error messages: "/etc/ferry/agent.yaml:3: retries" for a value
// from the file, "FERRY_RETRIES" from the environment, "--retries" otherwise.
func (s Sources) Where(name string) string {
	src := s[name]
	switch src.Kind {
	case "file":
		return src.Where + ": " + name
	case "env":
		return src.Where
	}
	return "--" + name
}

// Annotate prefixes err with the file and line (or environment variable) that set the flag its
// message starts with ("root: ..." becomes "agent.yaml:2: root: ..."); other errors pass as they
// are.
func (s Sources) Annotate(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	name, _, ok := strings.Cut(strings.TrimPrefix(msg, "--"), ":")
	if !ok {
		return err
	}
	rest := strings.TrimPrefix(msg, "--")
	switch src := s[name]; src.Kind {
	case "file":
		return fmt.Errorf("%s: %s", src.Where, rest)
	case "env":
		return fmt.Errorf("%s (%s): %s", src.Where, name, strings.TrimSpace(rest[len(name)+1:]))
	}
	return err
}

// Load parses args into fs, then sets every flag the command line left alone from the
// environment (getenv) or, failing that, the YAML file named by --config (or FERRY_CONFIG). The
// set must define a string flag "config".
func Load(fs *flag.FlagSet, args []string, getenv func(string) string) (Sources, error) {
	// Repeatable flags whose Value cannot list its values (flag.Func) record them, for Print.
	fs.VisitAll(func(f *flag.Flag) {
		if _, ok := f.Value.(interface{ Values() []string }); !ok && Repeatable(f) {
			f.Value = &recorded{Value: f.Value}
		}
	})
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	src := Sources{}
	fs.Visit(func(f *flag.Flag) { src[f.Name] = Source{Kind: "flag", Where: "--" + f.Name} })
	file := ""
	if f := fs.Lookup("config"); f != nil {
		file = f.Value.String()
		if _, set := src["config"]; !set {
			if v := getenv(EnvPrefix + "CONFIG"); v != "" {
				file = v
				src["config"] = Source{Kind: "env", Where: EnvPrefix + "CONFIG"}
			}
		}
	}
	var entries map[string]entry
	if file != "" {
		var err error
		if entries, err = readFile(fs, file); err != nil {
			return nil, err
		}
	}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if Meta[f.Name] {
			return
		}
		if _, set := src[f.Name]; set {
			return
		}
		if v, ok := lookupEnv(getenv, f.Name); ok {
			name := EnvName(f.Name)
			vals := []string{v}
			if Repeatable(f) {
				vals = splitList(v)
			}
			for _, x := range vals {
				if err := fs.Set(f.Name, x); err != nil {
					errs = append(errs, fmt.Errorf("%s (%s): invalid value %q: %v", name, f.Name, x, err))
					return
				}
			}
			src[f.Name] = Source{Kind: "env", Where: name}
			return
		}
		if e, ok := entries[f.Name]; ok {
			for _, x := range e.values {
				if err := fs.Set(f.Name, x); err != nil {
					errs = append(errs, fmt.Errorf("%s:%d: %s: invalid value %q: %v", file, e.line, f.Name, x, err))
					return
				}
			}
			src[f.Name] = Source{Kind: "file", Where: fmt.Sprintf("%s:%d", file, e.line)}
			return
		}
		src[f.Name] = Source{Kind: "default"}
	})
	return src, errors.Join(errs...)
}

// recorded remembers the values Set on a repeatable flag.
type recorded struct {
	flag.Value
	vals []string
}

func (r *recorded) Set(v string) error {
	if err := r.Value.Set(v); err != nil {
		return err
	}
	r.vals = append(r.vals, v)
	return nil
}

func (r *recorded) Values() []string { return r.vals }

// EnvName is the environment variable of a flag: FERRY_ plus its name in capitals, dashes as
// underscores (--grpc-listen: FERRY_GRPC_LISTEN).
func EnvName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func lookupEnv(getenv func(string) string, name string) (string, bool) {
	v := getenv(EnvName(name))
	return v, v != ""
}

func splitList(v string) []string {
	sep := ","
	if strings.Contains(v, "\n") {
		sep = "\n"
	}
	var out []string
	for _, x := range strings.Split(v, sep) {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// Repeatable reports whether f may be given several times: its Value has a Values method, or
// its usage says "repeatable".
func Repeatable(f *flag.Flag) bool {
	if _, ok := f.Value.(interface{ Values() []string }); ok {
		return true
	}
	return strings.Contains(f.Usage, "repeatable")
}

func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

type entry struct {
	line   int
	values []string
}

// maxFile bounds the configuration file.
const maxFile = 1 << 20

// readFile reads and checks the YAML file against fs's flags.
func readFile(fs *flag.FlagSet, file string) (map[string]entry, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if len(b) > maxFile {
		return nil, fmt.Errorf("config: %s: larger than %d bytes", file, maxFile)
	}
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(b)).Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return map[string]entry{}, nil // an empty file
		}
		return nil, fmt.Errorf("config: %s: %v", file, err)
	}
	m := &doc
	if m.Kind == yaml.DocumentNode && len(m.Content) == 1 {
		m = m.Content[0]
	}
	if m.Kind == yaml.ScalarNode && m.Tag == "!!null" {
		return map[string]entry{}, nil
	}
	if m.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: want a mapping of flag names to values (root: /srv/ferry)", file, m.Line)
	}
	out := map[string]entry{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		at := fmt.Sprintf("%s:%d", file, k.Line)
		if k.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("%s: want a flag name as key", at)
		}
		name := k.Value
		f := fs.Lookup(name)
		if f == nil || Meta[name] {
			msg := fmt.Sprintf("%s: unknown key %q", at, name)
			if s := suggest(fs, name); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			return nil, errors.New(msg + "; the keys are ferry-agent's flag names (ferry-agent --help)")
		}
		if prev, dup := out[name]; dup {
			return nil, fmt.Errorf("%s: key %q given twice (first on line %d)", at, name, prev.line)
		}
		e := entry{line: k.Line}
		switch v.Kind {
		case yaml.ScalarNode:
			if v.Tag == "!!null" {
				return nil, fmt.Errorf("%s: %s: no value", at, name)
			}
			e.values = []string{v.Value}
		case yaml.SequenceNode:
			if !Repeatable(f) {
				return nil, fmt.Errorf("%s: %s: want a single value, got a list", at, name)
			}
			for _, x := range v.Content {
				if x.Kind != yaml.ScalarNode {
					return nil, fmt.Errorf("%s:%d: %s: want a list of plain values", file, x.Line, name)
				}
				e.values = append(e.values, x.Value)
			}
		default:
			return nil, fmt.Errorf("%s: %s: want a value, got a mapping", at, name)
		}
		if isBool(f) && len(e.values) == 1 {
			switch strings.ToLower(e.values[0]) {
			case "true", "yes", "on", "1":
				e.values[0] = "true"
			case "false", "no", "off", "0":
				e.values[0] = "false"
			default:
				return nil, fmt.Errorf("%s: %s: want true or false, got %q", at, name, e.values[0])
			}
		}
		out[name] = e
	}
	return out, nil
}

// suggest returns the flag name closest to name (underscores for dashes, a typo or two), or "".
func suggest(fs *flag.FlagSet, name string) string {
	want := strings.ReplaceAll(strings.ToLower(name), "_", "-")
	best, bestD := "", 3
	fs.VisitAll(func(f *flag.Flag) {
		if Meta[f.Name] {
			return
		}
		if d := distance(want, f.Name); d < bestD {
			best, bestD = f.Name, d
		}
	})
	return best
}

// distance is the Levenshtein distance of a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Print writes the effective configuration as a YAML file Load reads back: every flag but the
// meta ones, sorted, each with a comment saying where its value came from. Values of flags
// whose names mention a password or secret are masked, and Values with a Redacted() string (or,
// repeatable, RedactedValues() []string) method print that instead.
func Print(w io.Writer, fs *flag.FlagSet, src Sources) error {
	var names []string
	fs.VisitAll(func(f *flag.Flag) {
		if !Meta[f.Name] {
			names = append(names, f.Name)
		}
	})
	sort.Strings(names)
	m := &yaml.Node{Kind: yaml.MappingNode}
	for _, n := range names {
		f := fs.Lookup(n)
		k := &yaml.Node{Kind: yaml.ScalarNode, Value: n}
		var v *yaml.Node
		if Repeatable(f) {
			v = &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
			for _, x := range values(f) {
				v.Content = append(v.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: x})
			}
		} else {
			v = &yaml.Node{Kind: yaml.ScalarNode, Value: display(f)}
			if v.Value == "" {
				v.Style = yaml.DoubleQuotedStyle
			}
		}
		s := src[n]
		v.LineComment = s.Kind
		if s.Where != "" && s.Kind != "flag" {
			v.LineComment += " " + s.Where
		}
		m.Content = append(m.Content, k, v)
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(m); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	if !bytes.HasSuffix(b.Bytes(), []byte("\n")) {
		b.WriteByte('\n')
	}
	_, err := w.Write(b.Bytes())
	return err
}

func secretName(name string) bool {
	return strings.Contains(name, "password") || strings.Contains(name, "secret")
}

func display(f *flag.Flag) string {
	if r, ok := f.Value.(interface{ Redacted() string }); ok {
		return r.Redacted()
	}
	v := f.Value.String()
	if secretName(f.Name) && v != "" {
		return "*****"
	}
	return v
}

func values(f *flag.Flag) []string {
	if r, ok := f.Value.(interface{ RedactedValues() []string }); ok {
		return r.RedactedValues()
	}
	var vs []string
	if l, ok := f.Value.(interface{ Values() []string }); ok {
		vs = l.Values()
	} else if s := f.Value.String(); s != "" {
		vs = strings.Split(s, ",")
	}
	if secretName(f.Name) {
		for i := range vs {
			vs[i] = "*****"
		}
	}
	return vs
}
