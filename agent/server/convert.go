package server

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ferry-dev/ferry/agent/netcheck"
	"github.com/ferry-dev/ferry/agent/transfer"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

func modeToProto(m transfer.Mode) ferryv1.TransferMode {
	switch m {
	case transfer.ModePassive:
		return ferryv1.TransferMode_TRANSFER_MODE_PASSIVE
	case transfer.ModeActive:
		return ferryv1.TransferMode_TRANSFER_MODE_ACTIVE
	}
	return ferryv1.TransferMode_TRANSFER_MODE_AUTO
}

// modeFromProto maps the API mode; set is false for UNSPECIFIED (the agent's default applies).
func modeFromProto(m ferryv1.TransferMode) (mode transfer.Mode, set, ok bool) {
	switch m {
	case ferryv1.TransferMode_TRANSFER_MODE_UNSPECIFIED:
		return transfer.ModeAuto, false, true
	case ferryv1.TransferMode_TRANSFER_MODE_PASSIVE:
		return transfer.ModePassive, true, true
	case ferryv1.TransferMode_TRANSFER_MODE_ACTIVE:
		return transfer.ModeActive, true, true
	case ferryv1.TransferMode_TRANSFER_MODE_AUTO:
		return transfer.ModeAuto, true, true
	}
	return 0, false, false
}

var stateToProto = map[transfer.State]ferryv1.TransferState{
	transfer.StateQueued:    ferryv1.TransferState_TRANSFER_STATE_QUEUED,
	transfer.StateRunning:   ferryv1.TransferState_TRANSFER_STATE_RUNNING,
	transfer.StateSucceeded: ferryv1.TransferState_TRANSFER_STATE_SUCCEEDED,
	transfer.StateFailed:    ferryv1.TransferState_TRANSFER_STATE_FAILED,
	transfer.StateCancelled: ferryv1.TransferState_TRANSFER_STATE_CANCELLED,
}

func stateFromProto(s ferryv1.TransferState) (transfer.State, bool) {
	for k, v := range stateToProto {
		if v == s {
			return k, true
		}
	}
	return 0, false
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func transferToProto(s transfer.Snapshot) *ferryv1.Transfer {
	t := &ferryv1.Transfer{
		Id:             s.ID,
		Source:         s.Source,
		Destination:    s.Destination,
		RequestedMode:  modeToProto(s.RequestedMode),
		ModeReason:     s.ModeReason,
		State:          stateToProto[s.State],
		Error:          s.Err,
		CreatedAt:      ts(s.Created),
		StartedAt:      ts(s.Started),
		FinishedAt:     ts(s.Finished),
		Sha256:         s.SHA256,
		Verified:       s.Verified,
		Reversed:       s.Reversed,
		PeerTransferId: s.PeerTransfer,
		Attempt:        int32(s.Attempt),
		LastError:      s.LastError,
		RequestId:      s.RequestID,
		ErrorCode:      s.ErrCode,
		BytesResumed:   s.Resumed,
		TcpCongestion:  s.TCPCongestion,
		LimitRate:      s.LimitRate,
		Streams:        int32(s.Streams),
		FilesSkipped:   s.FilesSkipped,
		FilesDeleted:   s.FilesDeleted,
		VerifyNote:     s.VerifyNote,
		Options:        optionsToProto(s.Options),
		Planned:        actionsToProto(s.Planned),
		PlannedOmitted: s.PlannedOmitted,
		Progress: &ferryv1.Progress{
			Phase:          s.Phase,
			BytesDone:      s.BytesDone,
			BytesTotal:     s.BytesTotal,
			FilesDone:      s.FilesDone,
			FilesTotal:     s.FilesTotal,
			BytesPerSecond: s.Rate,
			CurrentFile:    s.CurrentFile,
		},
	}
	if s.Mode != transfer.ModeAuto {
		t.Mode = modeToProto(s.Mode)
	}
	if s.ETA >= 0 {
		t.Progress.Eta = durationpb.New(s.ETA)
	}
	switch s.Direction {
	case transfer.Download:
		t.Direction = ferryv1.Direction_DIRECTION_DOWNLOAD
	case transfer.Upload:
		t.Direction = ferryv1.Direction_DIRECTION_UPLOAD
	}
	return t
}

// snapshotFromProto is the part of a peer's transfer a reversed job mirrors.
func snapshotFromProto(t *ferryv1.Transfer) transfer.Snapshot {
	mode, _, _ := modeFromProto(t.GetMode())
	state, _ := stateFromProto(t.GetState())
	p := t.GetProgress()
	return transfer.Snapshot{
		ID: t.GetId(), State: state, Mode: mode, ModeReason: t.GetModeReason(), Err: t.GetError(), ErrCode: t.GetErrorCode(),
		BytesDone: p.GetBytesDone(), BytesTotal: p.GetBytesTotal(),
		FilesDone: p.GetFilesDone(), FilesTotal: p.GetFilesTotal(), CurrentFile: p.GetCurrentFile(),
		SHA256: t.GetSha256(), Verified: t.GetVerified(), Resumed: t.GetBytesResumed(),
		Phase: p.GetPhase(), FilesSkipped: t.GetFilesSkipped(), FilesDeleted: t.GetFilesDeleted(),
		VerifyNote: t.GetVerifyNote(), Planned: actionsFromProto(t.GetPlanned()), PlannedOmitted: t.GetPlannedOmitted(),
	}
}

func optionsFromProto(o *ferryv1.TransferOptions) transfer.Options {
	return transfer.Options{
		Include: o.GetInclude(), Exclude: o.GetExclude(), NoClobber: o.GetNoClobber(), Update: o.GetUpdate(),
		Sync: o.GetSync(), Checksum: o.GetChecksum(), Delete: o.GetDelete(), DryRun: o.GetDryRun(),
	}
}

// optionsToProto is nil for the zero options (a plain copy's JSON stays as it was).
func optionsToProto(o transfer.Options) *ferryv1.TransferOptions {
	if len(o.Include) == 0 && len(o.Exclude) == 0 && !o.NoClobber && !o.Update && !o.Sync && !o.Checksum && !o.Delete && !o.DryRun {
		return nil
	}
	return &ferryv1.TransferOptions{
		Include: o.Include, Exclude: o.Exclude, NoClobber: o.NoClobber, Update: o.Update,
		Sync: o.Sync, Checksum: o.Checksum, Delete: o.Delete, DryRun: o.DryRun,
	}
}

func actionsToProto(as []transfer.Action) []*ferryv1.PlannedAction {
	var out []*ferryv1.PlannedAction
	for _, a := range as {
		out = append(out, &ferryv1.PlannedAction{Action: a.Action, Path: a.Path, Size: a.Size, Reason: a.Reason})
	}
	return out
}

func actionsFromProto(as []*ferryv1.PlannedAction) []transfer.Action {
	var out []transfer.Action
	for _, a := range as {
		out = append(out, transfer.Action{Action: a.GetAction(), Path: a.GetPath(), Size: a.GetSize(), Reason: a.GetReason()})
	}
	return out
}

func suggestedToProto(m netcheck.Mode) ferryv1.TransferMode {
	switch m {
	case netcheck.ModePassive:
		return ferryv1.TransferMode_TRANSFER_MODE_PASSIVE
	case netcheck.ModeActive:
		return ferryv1.TransferMode_TRANSFER_MODE_ACTIVE
	}
	return ferryv1.TransferMode_TRANSFER_MODE_UNSPECIFIED
}

func checkStatusToProto(s netcheck.Status) ferryv1.CheckStatus {
	switch s {
	case netcheck.OK:
		return ferryv1.CheckStatus_CHECK_STATUS_OK
	case netcheck.Warn:
		return ferryv1.CheckStatus_CHECK_STATUS_WARN
	case netcheck.Fail:
		return ferryv1.CheckStatus_CHECK_STATUS_FAIL
	}
	return ferryv1.CheckStatus_CHECK_STATUS_SKIP
}
