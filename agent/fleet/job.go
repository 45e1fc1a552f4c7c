// Package fleet is the fleet coordinator: it holds fleet jobs (one file or tree moved to, or
// gathered from, many agents) in the agent's job store and drives them by starting ordinary
// transfers on the receiving agents (StartTransfer with an agent:// source), so resume,
// retries and verification are the transfer engine's. With the tree strategy, agents that
// already hold a verified copy serve the next ones. A job survives the coordinator's restart:
// every delivery carries a request id derived from the job, the host and the attempt, so
// asking again after a restart finds the transfer started before it.
package fleet

import (
	"encoding/json"
	"fmt"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// Agent is one agent as the job sees it.
type Agent struct {
	Name    string `json:"name"`
	Address string `json:"address"`
}

// jobRecord is a job's spec and state, stored under "j/<id>".
type jobRecord struct {
	ID           string                `json:"id"`
	Kind         ferryv1.FleetJobKind  `json:"kind"`
	Source       Agent                 `json:"source"`
	SourcePath   string                `json:"source_path"`
	Destination  Agent                 `json:"destination"`
	DestPath     string                `json:"dest_path"`
	Strategy     ferryv1.FleetStrategy `json:"strategy"`
	Fanout       int                   `json:"fanout"`
	Canary       int                   `json:"canary"`
	Concurrency  int                   `json:"concurrency"`
	MaxAttempts  int                   `json:"max_attempts"`
	RequestID    string                `json:"request_id,omitempty"`
	Hosts        int                   `json:"hosts"`
	State        ferryv1.FleetJobState `json:"state"`
	Error        string                `json:"error,omitempty"`
	SHA256       string                `json:"sha256,omitempty"`
	SourceCopies int                   `json:"source_copies"`
	Cancelled    bool                  `json:"cancelled,omitempty"`
	Created      time.Time             `json:"created"`
	Finished     time.Time             `json:"finished"`
}

// hostRecord is one target's state, stored under "h/<job id>/<index>".
type hostRecord struct {
	Name       string                 `json:"name"`
	Address    string                 `json:"address"`
	State      ferryv1.FleetHostState `json:"state"`
	Wave       int                    `json:"wave"`
	Attempt    int                    `json:"attempt"`
	Reroutes   int                    `json:"reroutes,omitempty"`
	RequestID  string                 `json:"request_id,omitempty"`
	TransferID string                 `json:"transfer_id,omitempty"`
	ServedBy   string                 `json:"served_by,omitempty"`   // name ("" = the source)
	ServerAddr string                 `json:"server_addr,omitempty"` // gRPC address of who serves
	Runner     string                 `json:"runner,omitempty"`      // name of the agent running it
	RunnerAddr string                 `json:"runner_addr,omitempty"`
	Err        string                 `json:"error,omitempty"`
	SHA256     string                 `json:"sha256,omitempty"`
	BytesDone  int64                  `json:"bytes_done"`
	BytesTotal int64                  `json:"bytes_total"`
	Started    time.Time              `json:"started"`
	Finished   time.Time              `json:"finished"`
	NextTry    time.Time              `json:"next_try"`
	// RelayDead: this host held a copy but stopped answering; it serves no one any more.
	RelayDead bool `json:"relay_dead,omitempty"`

	polls int // consecutive failed polls of the runner (not stored)
}

func (h *hostRecord) final() bool {
	return h.State == ferryv1.FleetHostState_FLEET_HOST_STATE_SUCCEEDED ||
		h.State == ferryv1.FleetHostState_FLEET_HOST_STATE_FAILED ||
		h.State == ferryv1.FleetHostState_FLEET_HOST_STATE_SKIPPED
}

func jobKey(id string) string         { return "j/" + id }
func hostKey(id string, i int) string { return fmt.Sprintf("h/%s/%06d", id, i) }
func finalJob(s ferryv1.FleetJobState) bool {
	return s != ferryv1.FleetJobState_FLEET_JOB_STATE_RUNNING
}

// job is one fleet job in memory. Its driver goroutine is the only writer of rec and hosts and
// writes them under mu; readers (snapshots for Get and Watch) take mu.
type job struct {
	mu      sync.Mutex
	rec     jobRecord
	hosts   []*hostRecord
	version uint64
	notify  chan struct{} // closed and replaced at every change
	wake    chan struct{} // capacity 1: cancel asks the driver to look now
	done    chan struct{} // closed when the driver returns
	owner   string
	// cancel is set by Cancel; the driver sees it at its next step and records Cancelled.
	cancel atomic.Bool
}

func newJob(rec jobRecord, hosts []*hostRecord) *job {
	return &job{rec: rec, hosts: hosts, notify: make(chan struct{}), wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// changed publishes a change to watchers; call with mu held.
func (j *job) changed() {
	j.version++
	close(j.notify)
	j.notify = make(chan struct{})
}

// finalPath is where a copy lands on each receiver (and what a relay serves from).
func (r *jobRecord) finalPath() string {
	if strings.HasSuffix(r.DestPath, "/") {
		return r.DestPath + path.Base(strings.TrimSuffix(r.SourcePath, "/"))
	}
	return r.DestPath
}

// snapshot returns the job as the API shows it; withHosts false leaves the host list out.
func (j *job) snapshot(withHosts bool) *ferryv1.FleetJob {
	j.mu.Lock()
	defer j.mu.Unlock()
	r := &j.rec
	out := &ferryv1.FleetJob{
		Id: r.ID, Kind: r.Kind, State: r.State, SourcePath: r.SourcePath, DestinationPath: r.DestPath,
		Strategy: r.Strategy, Fanout: int32(r.Fanout), Canary: int32(r.Canary),
		Concurrency: int32(r.Concurrency), MaxAttempts: int32(r.MaxAttempts),
		HostsTotal: int32(len(j.hosts)), SourceCopies: int32(r.SourceCopies), Error: r.Error,
		CreatedAt: ts(r.Created), FinishedAt: ts(r.Finished), RequestId: r.RequestID, Sha256: r.SHA256,
	}
	if r.Source.Address != "" {
		out.Source = &ferryv1.FleetAgent{Name: r.Source.Name, Address: r.Source.Address}
	}
	if r.Destination.Address != "" {
		out.Destination = &ferryv1.FleetAgent{Name: r.Destination.Name, Address: r.Destination.Address}
	}
	for _, h := range j.hosts {
		switch h.State {
		case ferryv1.FleetHostState_FLEET_HOST_STATE_SUCCEEDED:
			out.HostsSucceeded++
		case ferryv1.FleetHostState_FLEET_HOST_STATE_FAILED:
			out.HostsFailed++
		case ferryv1.FleetHostState_FLEET_HOST_STATE_RUNNING:
			out.HostsRunning++
		}
		if !withHosts {
			continue
		}
		served := h.ServedBy
		if served == "" && h.ServerAddr != "" {
			served = r.Source.Name
		}
		out.Hosts = append(out.Hosts, &ferryv1.FleetHost{
			Name: h.Name, Address: h.Address, State: h.State, Attempt: int32(h.Attempt),
			TransferId: h.TransferID, ServedBy: served, BytesDone: h.BytesDone, BytesTotal: h.BytesTotal,
			Error: h.Err, Sha256: h.SHA256, Wave: int32(h.Wave), StartedAt: ts(h.Started),
			FinishedAt: ts(h.Finished), Runner: h.Runner,
		})
	}
	return out
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func marshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain structs: cannot fail
	}
	return b
}
