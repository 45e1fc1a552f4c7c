package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/ctl/render"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// TestFleetLiveView: on a terminal, the bar counts hosts, hosts in flight or failed have a
// line, done hosts fold away, and each redraw first erases the previous one.
func TestFleetLiveView(t *testing.T) {
	var errOut, out bytes.Buffer
	a := &app{format: render.Text, stderrTTY: true, stderr: &errOut, stdout: &out, now: time.Now}
	v := newFleetView(a)
	job := &ferryv1.FleetJob{Id: "j1", State: ferryv1.FleetJobState_FLEET_JOB_STATE_RUNNING, HostsTotal: 4,
		HostsSucceeded: 2, HostsFailed: 1, HostsRunning: 1, Hosts: []*ferryv1.FleetHost{
			{Name: "done-a", State: ferryv1.FleetHostState_FLEET_HOST_STATE_SUCCEEDED, Attempt: 1, Runner: "done-a"},
			{Name: "done-b", State: ferryv1.FleetHostState_FLEET_HOST_STATE_SUCCEEDED, Attempt: 1, Runner: "done-b"},
			{Name: "busy", State: ferryv1.FleetHostState_FLEET_HOST_STATE_RUNNING, Attempt: 2, ServedBy: "done-a",
				Runner: "busy", BytesDone: 50, BytesTotal: 100, Error: "connection reset"},
			{Name: "broken", State: ferryv1.FleetHostState_FLEET_HOST_STATE_FAILED, Attempt: 3, Runner: "broken", Error: "no route"},
		}}
	if err := v.update(nil, job); err != nil {
		t.Fatal(err)
	}
	first := errOut.String()
	for _, want := range []string{"3/4 hosts", "ok 2", "failed 1", "running 1", "busy", " 50%", "from done-a", "connection reset", "broken", "FAILED after 3"} {
		if !strings.Contains(first, want) {
			t.Errorf("view lacks %q:\n%s", want, first)
		}
	}
	if strings.Contains(first, "done-b") {
		t.Errorf("a done host should fold away:\n%s", first)
	}
	if n := strings.Count(first, "\n"); n != 3 {
		t.Errorf("%d lines, want the bar and 2 hosts:\n%s", n, first)
	}
	errOut.Reset()
	if err := v.update(job, job); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(errOut.String(), "\x1b[3A\x1b[J") {
		t.Errorf("a redraw should erase the 3 lines drawn: %q", errOut.String()[:12])
	}
	job.State = ferryv1.FleetJobState_FLEET_JOB_STATE_FAILED
	job.Error = "1 of 4 hosts failed: broken"
	v.clear()
	err := v.finish(job, false)
	if err == nil || !strings.Contains(err.Error(), "broken") {
		t.Errorf("finish: %v; want an error naming broken", err)
	}
	if !strings.Contains(out.String(), "HOST") || !strings.Contains(out.String(), "failed: 1 of 4 hosts failed: broken") {
		t.Errorf("summary:\n%s", out.String())
	}
}

func TestSelectors(t *testing.T) {
	inv, err := parseInventory([]byte(`agents:
  - {name: a, address: "h1:7070", labels: {role: edge, region: eu}}
  - {name: b, address: "h2:7070", labels: {role: edge, region: us}}
  - {name: c, address: "h3:7070", labels: {role: origin, region: eu}}
`))
	if err != nil {
		t.Fatal(err)
	}
	for sel, want := range map[string]string{
		"":                    "a,b,c",
		"*":                   "a,b,c",
		"role=edge":           "a,b",
		"role=edge,region=eu": "a",
		"name=c":              "c",
		"region!=us":          "a,c",
		"role=edge|origin":    "a,b,c",
		"name=a|b,region=us":  "b",
	} {
		got, err := inv.selectAgents(sel)
		var names []string
		for _, g := range got {
			names = append(names, g.Name)
		}
		if err != nil || strings.Join(names, ",") != want {
			t.Errorf("%q: %v %v; want %s", sel, names, err, want)
		}
	}
	for _, bad := range []string{"role", "=edge", "role=", "zone=none"} {
		if _, err := inv.selectAgents(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for body, field := range map[string]string{
		"agents: []": "agents: none",
		"agents:\n  - {name: 'a b', address: 'h:1'}":                            "agents[0].name",
		"agents:\n  - {name: a, address: nohost}":                               "agents[0].address",
		"agents:\n  - {name: a, address: 'h:1'}\n  - {name: a, address: 'h:2'}": "agents[1].name",
		"agents:\n  - {name: a, address: 'h:1', port: 3}":                       "field port not found",
		"agents:\n  - {name: a, address: 'h:1', labels: {'a=b': x}}":            "agents[0].labels",
	} {
		if _, err := parseInventory([]byte(body)); err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%q: %v; want an error naming %s", body, err, field)
		}
	}
}
