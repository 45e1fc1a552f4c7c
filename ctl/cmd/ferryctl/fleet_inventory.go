package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxInventoryBytes bounds an inventory file (10,000 agents with labels fit in a few MiB).
const maxInventoryBytes = 16 << 20

// inventory is the fleet: agents with names, gRPC addresses and labels.
//
//	agents:
//	  - name: n0
//	    address: 127.0.0.1:7070
//	    labels: {role: origin, region: eu}
type inventory struct {
	Agents []invAgent `yaml:"agents"`
}

type invAgent struct {
	Name    string            `yaml:"name"`
	Address string            `yaml:"address"`
	Labels  map[string]string `yaml:"labels"`
}

var invNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// loadInventory reads an inventory file, "-" being stdin.
func loadInventory(path string, stdin io.Reader) (*inventory, error) {
	if path == "" {
		return nil, usageErrorf("--inventory: required (a YAML file of agents, or - for stdin)")
	}
	var r io.Reader
	if path == "-" {
		r = stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, usageErrorf("--inventory: %v", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxInventoryBytes+1))
	if err != nil {
		return nil, usageErrorf("--inventory: %v", err)
	}
	if len(b) > maxInventoryBytes {
		return nil, usageErrorf("--inventory: larger than %d MiB", maxInventoryBytes>>20)
	}
	return parseInventory(b)
}

func parseInventory(b []byte) (*inventory, error) {
	var inv inventory
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&inv); err != nil {
		if err == io.EOF {
			return nil, usageErrorf("inventory: empty")
		}
		return nil, usageErrorf("inventory: %v", err)
	}
	if len(inv.Agents) == 0 {
		return nil, usageErrorf("inventory: agents: none")
	}
	seen := map[string]bool{}
	for i, a := range inv.Agents {
		if !invNameRE.MatchString(a.Name) {
			return nil, usageErrorf("inventory: agents[%d].name: %q is not a name (letters, digits, '.', '_', '-'; at most 64)", i, a.Name)
		}
		if seen[a.Name] {
			return nil, usageErrorf("inventory: agents[%d].name: %q twice", i, a.Name)
		}
		seen[a.Name] = true
		if a.Address == "" || strings.ContainsAny(a.Address, " \t/") || !strings.Contains(a.Address, ":") {
			return nil, usageErrorf("inventory: agents[%d].address: %q is not host:port", i, a.Address)
		}
		for k := range a.Labels {
			if k == "" || k == "name" || strings.ContainsAny(k, "=,!|: ") {
				return nil, usageErrorf("inventory: agents[%d].labels: key %q (not empty, not \"name\", no '=', ',', '!', '|', ':' or space)", i, k)
			}
		}
	}
	return &inv, nil
}

// byName returns the agent called name.
func (inv *inventory) byName(name string) (invAgent, error) {
	for _, a := range inv.Agents {
		if a.Name == name {
			return a, nil
		}
	}
	return invAgent{}, usageErrorf("no agent %q in the inventory", name)
}

// selector is a conjunction of terms: key=value, key!=value (value may list alternatives with
// |), and name=... for the agent's name. "" or "*" selects every agent.
type selector []selTerm

type selTerm struct {
	key    string
	values []string
	negate bool
}

func parseSelector(s string) (selector, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "*" {
		return nil, nil
	}
	var out selector
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		neg := false
		k, v, ok := strings.Cut(part, "!=")
		if ok {
			neg = true
		} else if k, v, ok = strings.Cut(part, "="); !ok {
			return nil, usageErrorf("selector %q: term %q: want key=value or key!=value", s, part)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if k == "" || v == "" {
			return nil, usageErrorf("selector %q: term %q: empty key or value", s, part)
		}
		out = append(out, selTerm{key: k, values: strings.Split(v, "|"), negate: neg})
	}
	return out, nil
}

func (s selector) matches(a invAgent) bool {
	for _, t := range s {
		v, ok := a.Labels[t.key]
		if t.key == "name" {
			v, ok = a.Name, true
		}
		hit := false
		for _, want := range t.values {
			if ok && v == want {
				hit = true
			}
		}
		if hit == t.negate {
			return false
		}
	}
	return true
}

// selectAgents returns the agents sel matches, in inventory order; none is an error.
func (inv *inventory) selectAgents(sel string) ([]invAgent, error) {
	s, err := parseSelector(sel)
	if err != nil {
		return nil, err
	}
	var out []invAgent
	for _, a := range inv.Agents {
		if s.matches(a) {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, usageErrorf("selector %q matches no agent of the inventory", sel)
	}
	return out, nil
}

// splitTarget splits "NAME:PATH" or "SELECTOR:PATH" at the first colon.
func splitTarget(what, s string) (string, string, error) {
	left, p, ok := strings.Cut(s, ":")
	if !ok || strings.TrimSpace(p) == "" {
		return "", "", usageErrorf("%s %q: want %s:PATH", what, s, map[bool]string{true: "SELECTOR", false: "NAME"}[strings.Contains(what, "selector")])
	}
	return left, p, nil
}

func labelString(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+l[k])
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ",")
}

func describeSel(sel string) string {
	if sel == "" {
		return "*"
	}
	return fmt.Sprintf("%q", sel)
}
