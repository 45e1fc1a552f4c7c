package transfer

import (
	"encoding/json"
	"fmt"
	"time"
)

// Spec is a transfer as asked for. It is what the store keeps to run the job again after a
// restart, so it holds the endpoints as given, passwords included: records live only in the
// store (mode 0600) and are never logged (Snapshot carries the redacted form).
type Spec struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Mode        Mode   `json:"mode"`
	// ModeSet is false when the caller left the mode unspecified (DefaultMode applies).
	ModeSet bool `json:"mode_set,omitempty"`
	// RequestID is the caller's idempotency key: the same key returns the same job.
	RequestID string `json:"request_id,omitempty"`
	// Restart ignores a part file left by an earlier transfer with the same endpoints.
	Restart bool `json:"restart,omitempty"`
	// Owner names the caller that started the job (a peer agent may reach only its own).
	Owner string `json:"owner,omitempty"`
	// TLSPin, when set, is the SHA-256 (hex) of the remote FTP server's certificate: the only
	// one accepted, with no CA check. Internal: a reversed transfer carries its peer's pin here
	// (the API's ReverseTransferRequest.tls_cert_sha256); the remote must be ftpes:// or ftps://.
	TLSPin string `json:"tls_pin,omitempty"`
	// LimitRate is the job's bandwidth limit in bytes per second (0 = none besides the
	// agent's); Manager.Update changes it while the job runs.
	LimitRate int64 `json:"limit_rate,omitempty"`
	// Streams asks for that many parallel streams for one large file (segments.go); 0 picks.
	Streams int `json:"streams,omitempty"`
	// Options select and compare files (plan.go): filters, no-clobber, update, sync, delete,
	// dry run. Persisted with the job, so a resumed job selects the same way.
	Options
}

// MaxRequestID bounds the idempotency key (bytes); the API edge checks it too, before logging.
const MaxRequestID = 128

// checkpoint is what a job needs to resume safely, saved with its record.
type checkpoint struct {
	// Source as first seen: a resume against a server without range hashes trusts a part
	// file only while the source still has this size and modification time.
	SrcSize    int64     `json:"src_size,omitempty"`
	SrcModTime time.Time `json:"src_mtime,omitempty"`
	// Done lists the tree files already published (relative paths).
	Done []string `json:"done,omitempty"`
	// Peer is the peer agent running a reversed transfer, and PeerTransfer its id there.
	Peer         string `json:"peer,omitempty"`
	PeerTransfer string `json:"peer_transfer,omitempty"`
	// Segments are the byte ranges of a file moving over parallel streams (segments.go).
	Segments []segment `json:"segments,omitempty"`
}

// record is a job as stored.
type record struct {
	Version int        `json:"v"`
	Spec    Spec       `json:"spec"`
	Snap    Snapshot   `json:"snapshot"`
	Check   checkpoint `json:"checkpoint"`
}

const recordVersion = 1

func encodeRecord(r record) ([]byte, error) {
	r.Version = recordVersion
	return json.Marshal(r)
}

func decodeRecord(b []byte) (record, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return record{}, err
	}
	if r.Version != recordVersion {
		return record{}, fmt.Errorf("record version %d, want %d", r.Version, recordVersion)
	}
	return r, nil
}
