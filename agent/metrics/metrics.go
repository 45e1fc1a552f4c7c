// Package metrics holds the agent's Prometheus collectors (names prefixed ferry_). They are fed
// by events, not by polling: the engine's Observer (job events, and progress snapshots through
// transfer.ProgressObserver so bytes count while they move) and the FTP server's EventSink. Only
// the number of open FTP sessions is read at scrape time, from the server's own counter.
//
// A Metrics has its own registry (no global state: tests run several agents in one process),
// which also holds the Go runtime and process collectors.
package metrics

import (
	"errors"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ferry-dev/ferry/agent/ftpclient"
	"github.com/ferry-dev/ferry/agent/ftpserver"
	"github.com/ferry-dev/ferry/agent/transfer"
)

// Metrics is one agent's collectors. It is a transfer.Observer (and ProgressObserver) and an
// ftpserver.EventSink.
type Metrics struct {
	reg *prometheus.Registry

	bytes        *prometheus.CounterVec   // engine: direction, mode
	ftpBytes     *prometheus.CounterVec   // FTP server: direction, mode
	transfers    *prometheus.CounterVec   // state
	running      prometheus.Gauge         // running transfers
	queued       prometheus.Gauge         // queued transfers
	logins       *prometheus.CounterVec   // result
	ftpOps       *prometheus.CounterVec   // op, result
	dataFailures *prometheus.CounterVec   // mode, cause
	retries      prometheus.Counter       // attempts that failed and were retried
	duration     *prometheus.HistogramVec // state

	mu   sync.Mutex
	jobs map[string]*job // transfers seen and not yet final
}

type job struct {
	state   transfer.State
	counted int64 // BytesDone already added to bytes
}

// New makes the collectors. sessions, if not nil, is read at scrape time for ferry_ftp_sessions
// (the FTP server's open control connections).
func New(sessions func() int) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), jobs: map[string]*job{}}
	m.bytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_transfer_bytes_total",
		Help: "Bytes moved by this agent's transfers (its FTP client), by direction (download, upload) and data-connection mode (passive, active, auto until known).",
	}, []string{"direction", "mode"})
	m.ftpBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_ftp_server_bytes_total",
		Help: "File bytes this agent's FTP server sent (RETR) or received (STOR), by direction (sent, received) and data-connection mode.",
	}, []string{"direction", "mode"})
	m.transfers = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_transfers_total",
		Help: "Transfers that reached a final state, by state (succeeded, failed, cancelled).",
	}, []string{"state"})
	m.running = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "ferry_transfers_running", Help: "Transfers running now.",
	})
	m.queued = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "ferry_transfers_queued", Help: "Transfers waiting for a slot (--max-transfers).",
	})
	m.logins = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_ftp_logins_total",
		Help: "FTP server logins, by result (accepted, refused).",
	}, []string{"result"})
	m.ftpOps = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_ftp_operations_total",
		Help: "FTP server file operations, by op (read, write, delete, rename, mkdir, rmdir) and result (ok, error).",
	}, []string{"op", "result"})
	m.dataFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_data_connection_failures_total",
		Help: "Transfer attempts whose data connection failed, by mode and cause (timeout: dropped by a firewall; refused: PORT/EPRT refused, NAT; error: refused or reset; stalled: no byte for --stall-timeout).",
	}, []string{"mode", "cause"})
	m.retries = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ferry_transfer_retries_total",
		Help: "Transfer attempts that failed with a transient error and were retried.",
	})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "ferry_transfer_duration_seconds",
		Help:    "Time from a transfer's creation to its final state, by state.",
		Buckets: []float64{0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600},
	}, []string{"state"})
	m.reg.MustRegister(m.bytes, m.ftpBytes, m.transfers, m.running, m.queued, m.logins, m.ftpOps,
		m.dataFailures, m.retries, m.duration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if sessions != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "ferry_ftp_sessions", Help: "FTP control connections open now.",
		}, func() float64 { return float64(sessions()) }))
	}
	// Known label values exist from the start, at 0: a rate() over a counter that appears late
	// misses its first increase.
	for _, st := range []string{"succeeded", "failed", "cancelled"} {
		m.transfers.WithLabelValues(st)
	}
	for _, r := range []string{"accepted", "refused"} {
		m.logins.WithLabelValues(r)
	}
	return m
}

// Registry is where the collectors are registered (tests gather from it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

var (
	_ transfer.Observer         = (*Metrics)(nil)
	_ transfer.ProgressObserver = (*Metrics)(nil)
	_ ftpserver.EventSink       = (*Metrics)(nil)
)

func direction(d transfer.Direction) string {
	if d == transfer.Upload {
		return "upload"
	}
	return "download"
}

// addBytesLocked counts what s moved since the last count.
func (m *Metrics) addBytesLocked(j *job, s transfer.Snapshot) {
	if d := s.BytesDone - j.counted; d > 0 {
		m.bytes.WithLabelValues(direction(s.Direction), s.Mode.String()).Add(float64(d))
	}
	j.counted = max(j.counted, s.BytesDone)
}

// setStateLocked moves j between the queued and running gauges.
func (m *Metrics) setStateLocked(j *job, st transfer.State) {
	gauge := func(s transfer.State) prometheus.Gauge {
		switch s {
		case transfer.StateQueued:
			return m.queued
		case transfer.StateRunning:
			return m.running
		}
		return nil
	}
	if g := gauge(j.state); g != nil {
		g.Dec()
	}
	if g := gauge(st); g != nil {
		g.Inc()
	}
	j.state = st
}

// Observe counts a job event.
func (m *Metrics) Observe(e transfer.Event) {
	s := e.Transfer
	m.mu.Lock()
	defer m.mu.Unlock()
	j := m.jobs[s.ID]
	if j == nil {
		j = &job{}
		m.jobs[s.ID] = j
	}
	switch e.Kind {
	case transfer.EventQueued:
		m.setStateLocked(j, transfer.StateQueued)
	case transfer.EventStarted:
		// A resumed or restarted transfer starts with bytes already there: they are not moved.
		j.counted = s.BytesDone
		m.setStateLocked(j, transfer.StateRunning)
	case transfer.EventAttemptFailed:
		m.addBytesLocked(j, s)
		m.retries.Inc()
		m.dataFailure(s.Mode, e.Err)
	case transfer.EventSucceeded, transfer.EventFailed, transfer.EventCancelled:
		m.addBytesLocked(j, s)
		if e.Kind == transfer.EventFailed {
			m.dataFailure(s.Mode, e.Err)
		}
		m.setStateLocked(j, s.State)
		delete(m.jobs, s.ID)
		m.transfers.WithLabelValues(s.State.String()).Inc()
		if !s.Finished.IsZero() && !s.Created.IsZero() {
			m.duration.WithLabelValues(s.State.String()).Observe(s.Finished.Sub(s.Created).Seconds())
		}
	}
}

// dataFailure counts err if a data connection caused it.
func (m *Metrics) dataFailure(mode transfer.Mode, err error) {
	var dce *ftpclient.DataConnError
	switch {
	case errors.As(err, &dce):
		cause := "error"
		switch {
		case dce.Refused:
			cause = "refused"
		case dce.Timeout:
			cause = "timeout"
		}
		md := "passive"
		if dce.Mode == ftpclient.ModeActive {
			md = "active"
		}
		m.dataFailures.WithLabelValues(md, cause).Inc()
	case errors.Is(err, ftpclient.ErrStalled):
		m.dataFailures.WithLabelValues(mode.String(), "stalled").Inc()
	}
}

// Progress counts bytes as they move.
func (m *Metrics) Progress(s transfer.Snapshot) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if j := m.jobs[s.ID]; j != nil {
		m.addBytesLocked(j, s)
	}
}

// FTPEvent counts the FTP server's logins, file operations and bytes.
func (m *Metrics) FTPEvent(e ftpserver.Event) {
	result := "ok"
	if e.Err != nil {
		result = "error"
	}
	switch e.Kind {
	case ftpserver.EventLogin:
		m.logins.WithLabelValues("accepted").Inc()
		return
	case ftpserver.EventLoginFailed:
		m.logins.WithLabelValues("refused").Inc()
		return
	case ftpserver.EventRead:
		m.ftpBytes.WithLabelValues("sent", modeLabel(e.Mode)).Add(float64(e.Bytes))
	case ftpserver.EventWrite:
		m.ftpBytes.WithLabelValues("received", modeLabel(e.Mode)).Add(float64(e.Bytes))
	}
	m.ftpOps.WithLabelValues(string(e.Kind), result).Inc()
}

func modeLabel(m string) string {
	if m == "" {
		return "unknown"
	}
	return m
}
