package transfer

import "time"

// State is the life cycle of a transfer.
type State int

const (
	StateQueued State = iota + 1
	StateRunning
	StateSucceeded
	StateFailed
	StateCancelled
)

// Final reports whether no further change can happen.
func (s State) Final() bool { return s >= StateSucceeded }

func (s State) String() string {
	switch s {
	case StateQueued:
		return "queued"
	case StateRunning:
		return "running"
	case StateSucceeded:
		return "succeeded"
	case StateFailed:
		return "failed"
	case StateCancelled:
		return "cancelled"
	}
	return "unknown"
}

// Mode is the data-connection mode asked for or used.
type Mode int

const (
	// ModeAuto tries what works: passive first, then active.
	ModeAuto Mode = iota
	ModePassive
	ModeActive
)

func (m Mode) String() string {
	switch m {
	case ModePassive:
		return "passive"
	case ModeActive:
		return "active"
	}
	return "auto"
}

// Direction is seen from the agent running the transfer.
type Direction int

const (
	// Download: remote source, local destination.
	Download Direction = iota + 1
	// Upload: local source, remote destination.
	Upload
)

// Snapshot is an immutable view of a transfer, as published to watchers.
type Snapshot struct {
	ID            string
	Source        string // password redacted
	Destination   string // password redacted
	Direction     Direction
	RequestedMode Mode
	Mode          Mode // the mode data connections use, once known (ModeAuto before)
	ModeReason    string
	State         State
	BytesDone     int64
	BytesTotal    int64
	FilesDone     int64
	FilesTotal    int64
	Rate          float64       // bytes per second, smoothed
	ETA           time.Duration // < 0 when unknown
	CurrentFile   string
	Err           string
	Created       time.Time
	Started       time.Time
	Finished      time.Time
	SHA256        string // single-file transfers
	Verified      bool   // the peer's HASH matched
	// Reversed: auto mode had the peer agent run the mirrored transfer against this agent's
	// FTP server; Mode is then the peer's mode and PeerTransfer its transfer ID.
	Reversed     bool
	PeerTransfer string
	Attempt      int    // attempts made so far
	LastError    string // cause of the last failed attempt
	RequestID    string // the caller's idempotency key
	ErrCode      string // ErrorCode of the final error
	Resumed      int64  // bytes not sent again: resumed from part files or already complete
	Owner        string // the caller that started it (Spec.Owner)
	LimitRate    int64  // the job's bandwidth limit in bytes per second (Spec.LimitRate); 0 = none
	// TCPCongestion is the congestion control this agent asks for on its data connections
	// (Config.Client.TCPCongestion; "" = the system default).
	TCPCongestion string
	Streams       int // parallel streams the file moved over (segments.go); 0 before it is known
	// Phase is what a running job does now: PhaseListing, PhaseTransferring, PhaseVerifying,
	// PhaseDeleting ("" when not running).
	Phase        string
	FilesSkipped int64  // files the options left alone
	FilesDeleted int64  // files sync --delete removed (or, dry run, would remove)
	VerifyNote   string // why a succeeded transfer is not verified ("not verified (server has no HASH)")
	Options      Options
	// Planned lists what the job did or, with DryRun, would do (at most MaxPlanned actions;
	// PlannedOmitted counts the rest).
	Planned        []Action
	PlannedOmitted int64
}
