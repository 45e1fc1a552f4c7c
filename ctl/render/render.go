// Package render turns Ferry API messages into what ferryctl prints: live progress (an mpb bar
// on a terminal, rate-limited plain lines otherwise), tables, key: value blocks and JSON lines.
// It knows nothing of the command line; ferryctl chooses the writer, the format and whether a
// terminal is attached.
package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// Format is an output format.
type Format int

const (
	// Text is for people: tables, progress bars, key: value lines.
	Text Format = iota
	// JSON is for scripts: protojson with proto field names, one object per line.
	JSON
)

// ParseFormat parses the value of -o/--output.
func ParseFormat(s string) (Format, error) {
	switch s {
	case "text":
		return Text, nil
	case "json":
		return JSON, nil
	}
	return Text, fmt.Errorf("invalid output format %q: want text or json", s)
}

func (f Format) String() string {
	if f == JSON {
		return "json"
	}
	return "text"
}

// marshalOptions is the JSON contract: proto field names, every field present, enums by name.
var marshalOptions = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}

// MarshalJSON renders m as compact protojson on one line (no trailing newline).
func MarshalJSON(m proto.Message) ([]byte, error) {
	raw, err := marshalOptions.Marshal(m)
	if err != nil {
		return nil, err
	}
	// protojson randomizes insignificant whitespace on purpose; compact it so the output is
	// stable and always one line.
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteJSON writes m as one line of protojson.
func WriteJSON(w io.Writer, m proto.Message) error {
	b, err := MarshalJSON(m)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// StateName is the short lower-case name of a state: "running", "succeeded".
func StateName(s ferryv1.TransferState) string {
	return shortEnum(s.String(), "TRANSFER_STATE_")
}

// ModeName is the short lower-case name of a mode: "passive", "active", "auto".
func ModeName(m ferryv1.TransferMode) string {
	return shortEnum(m.String(), "TRANSFER_MODE_")
}

func shortEnum(name, prefix string) string {
	return strings.ToLower(strings.TrimPrefix(name, prefix))
}

// IsFinal reports whether s is SUCCEEDED, FAILED or CANCELLED.
func IsFinal(s ferryv1.TransferState) bool {
	switch s {
	case ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED,
		ferryv1.TransferState_TRANSFER_STATE_FAILED,
		ferryv1.TransferState_TRANSFER_STATE_CANCELLED:
		return true
	}
	return false
}
