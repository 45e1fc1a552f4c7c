package transfer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-dev/ferry/agent/ftpclient"
	"github.com/ferry-dev/ferry/agent/storage"
)

// auto finds a way for the data: passive, then active (or the order that worked last with this
// peer), each giving up after the probe timeout on its first data connection; then, for another
// agent, the reversed direction: the peer runs the mirrored transfer against this agent's FTP
// server. What worked is remembered per peer; the snapshot's ModeReason tells the story.
func (j *job) auto() error {
	remote := j.plan.remote()
	canReverse := remote.Kind == KindAgent && j.m.cfg.Local != nil
	order := []Mode{ModePassive, ModeActive}
	reason := "auto: passive tried first"
	known, ok := j.m.dialer.routes.get(remote.Host)
	if ok {
		reason = fmt.Sprintf("auto: %s worked with %s recently", known, remote.Host)
		switch {
		case known.reversed && canReverse:
			err := j.reverse(reason)
			if err == nil {
				j.m.dialer.routes.put(remote.Host, known)
				return nil
			}
			j.m.dialer.routes.forget(remote.Host)
			return err
		case known.mode == ModeActive:
			order = []Mode{ModeActive, ModePassive}
		}
	}
	var failures []string
	var errs []error
	for _, mode := range order {
		j.update(func(s *Snapshot) { s.Mode, s.ModeReason = mode, reason })
		err := j.attempt(mode, true)
		if err == nil {
			j.m.dialer.routes.put(remote.Host, route{mode: mode})
			return nil
		}
		why, next := j.blocked(mode, err)
		if !next {
			return err
		}
		if ok {
			j.m.dialer.routes.forget(remote.Host)
		}
		failures = append(failures, why)
		errs = append(errs, err)
		var ce *controlError
		if errors.As(err, &ce) {
			break // the other mode needs the same control connection
		}
		reason = fmt.Sprintf("auto: %s; trying %s", strings.Join(failures, "; "), other(mode))
	}
	story := "auto: " + strings.Join(failures, "; ")
	if !canReverse {
		return &autoError{story: story, errs: errs}
	}
	if err := j.reverse(story); err != nil {
		return &autoError{story: story + "; reversing failed", errs: append(errs, err)}
	}
	j.m.dialer.routes.put(remote.Host, route{reversed: true})
	return nil
}

func other(m Mode) Mode {
	if m == ModePassive {
		return ModeActive
	}
	return ModePassive
}

// blocked tells whether err means that mode cannot carry data here (so another way may), and
// describes why in a few words.
func (j *job) blocked(mode Mode, err error) (why string, next bool) {
	if j.sent.Load() != 0 || j.ctx.Err() != nil {
		return "", false
	}
	var de *ftpclient.DataConnError
	var ce *controlError
	switch {
	case errors.As(err, &de) && mode == ModePassive:
		return fmt.Sprintf("passive to %s failed (data port unreachable: %s)", de.Addr, timeoutText(de)), true
	case errors.As(err, &de) && de.Refused:
		return fmt.Sprintf("active failed (the server refused to connect back to %s: NAT)", de.Addr), true
	case errors.As(err, &de):
		return fmt.Sprintf("active failed (no connect-back to %s: %s)", de.Addr, timeoutText(de)), true
	case errors.As(err, &ce) && ce.unreachable():
		return fmt.Sprintf("the FTP control port %s is unreachable (%s)", ce.addr, oneLine(ce.err.Error())), true
	}
	return "", false
}

func timeoutText(de *ftpclient.DataConnError) string {
	if de.Timeout {
		return de.Err.Error()
	}
	return oneLine(de.Err.Error())
}

// autoError is the failure of every way auto mode tried: the story, then each cause with its fix.
type autoError struct {
	story string
	errs  []error
}

func (e *autoError) Error() string {
	parts := make([]string, len(e.errs))
	for i, err := range e.errs {
		parts[i] = err.Error()
	}
	return e.story + ": " + strings.Join(parts, "; ")
}

func (e *autoError) Unwrap() []error { return e.errs }

// reverse has the peer agent run the mirrored transfer against this agent's FTP server, and
// mirrors its progress into this job.
func (j *job) reverse(story string) error {
	remote, local := j.plan.remote(), j.plan.local()
	// Each side gets its destination as the user gave it: the peer's upload resolves "into an
	// existing directory" on this agent's FTP server exactly as this download would have, and
	// creates the parent directories. Resolving here as well would nest a tree twice.
	req := ReverseRequest{PeerPath: remote.Path, LocalPath: local.Path, PeerSends: j.plan.dir == Download, LimitRate: j.thr.limit.Load(), Options: j.spec.Options}
	if req.PeerSends && local.Dir && local.Path != "." {
		req.LocalPath += "/"
	}
	if req.PeerSends && remote.Dir && remote.Path != "." {
		req.PeerPath += "/" // "tree/": its contents (landing's tree rule), on the peer too
	}
	if !req.PeerSends && local.Dir && local.Path != "." {
		req.LocalPath += "/"
	}
	if !req.PeerSends && remote.Dir && remote.Path != "." {
		req.PeerPath += "/"
	}
	g, err := j.m.cfg.Local.LocalGrant(local.Path, req.PeerSends)
	if err != nil {
		return fmt.Errorf("reverse: grant on this agent's FTP server: %w", err)
	}
	_, port, err := net.SplitHostPort(g.FTPAddr)
	if err != nil {
		return fmt.Errorf("reverse: this agent's FTP address %q: %w", g.FTPAddr, err)
	}
	req.FTPPort, _ = strconv.Atoi(port)
	req.User, req.Password, req.TLSPin = g.User, g.Password, g.TLSPin
	verb := "pulled from"
	if req.PeerSends {
		verb = "pushed to"
	}
	prefix := fmt.Sprintf("%s; reversed: the peer %s %s this agent's FTP server", story, remote.Host, verb)
	j.update(func(s *Snapshot) { s.Reversed, s.Mode, s.ModeReason = true, ModeAuto, prefix })
	// Where a plain download would have put the data, resolved before the peer creates
	// anything: the peer's part files land there.
	var final string
	if req.PeerSends {
		final = j.localFinal()
	}
	started := time.Now()
	err = j.followPeer(remote.Host, req, prefix)
	if err != nil && req.PeerSends && errors.Is(context.Cause(j.ctx), context.Canceled) {
		// Cancelled: the peer cannot remove its part files here (its one-time login is spent),
		// and Follow returns once the peer's transfer has ended, so this agent removes them.
		// A failure keeps them: the next reversed attempt resumes them.
		j.removeReversedParts(final, started)
	}
	if err == nil && req.PeerSends {
		_ = j.m.root.Remove(j.partName(final)) // what an attempt of this agent's own left
	}
	return err
}

// followPeer starts the reversed transfer on the peer (or re-attaches to the one a previous
// attempt or run of this job started: its id is in the checkpoint) and mirrors its progress.
func (j *job) followPeer(peer string, req ReverseRequest, prefix string) error {
	j.mu.Lock()
	id := j.check.PeerTransfer
	if j.check.Peer != peer {
		id = ""
	}
	attempt := j.snap.Attempt
	j.mu.Unlock()
	progress := func(ps Snapshot) {
		j.bytes.Store(ps.BytesDone)
		j.sent.Store(ps.BytesDone)
		j.update(func(s *Snapshot) {
			s.PeerTransfer = ps.ID
			s.BytesTotal, s.FilesTotal, s.FilesDone, s.CurrentFile = ps.BytesTotal, ps.FilesTotal, ps.FilesDone, ps.CurrentFile
			s.Resumed = ps.Resumed
			s.Phase, s.FilesSkipped, s.FilesDeleted = ps.Phase, ps.FilesSkipped, ps.FilesDeleted
			s.Planned, s.PlannedOmitted = ps.Planned, ps.PlannedOmitted
			if ps.Mode != ModeAuto {
				s.Mode = ps.Mode
				s.ModeReason = fmt.Sprintf("%s in %s mode", prefix, ps.Mode)
				if ps.ModeReason != "" {
					s.ModeReason += " (peer's " + ps.ModeReason + ")"
				}
			}
			if ps.State == StateSucceeded {
				s.SHA256, s.Verified, s.VerifyNote = ps.SHA256, ps.Verified, ps.VerifyNote
			}
		})
		if ps.State.Final() {
			// The peer's transfer is over: a retry of this job starts a new one.
			j.checkpoint(func(c *checkpoint) { c.PeerTransfer = "" })
		}
	}
	if id != "" {
		// Re-attach to the peer's transfer a previous attempt or run of this job started.
		var ended bool
		err := j.m.cfg.Peers.Follow(j.ctx, peer, id, func(ps Snapshot) {
			ended = ps.State.Final()
			progress(ps)
		})
		if err == nil || j.ctx.Err() != nil || !(ended || errors.Is(err, ErrNotFound)) {
			return err
		}
		// It ended without success (its one-time login died with this agent's restart, say),
		// or the peer no longer knows it: start a new one, which resumes the part files.
		j.m.log.Info("the peer's reversed transfer ended; starting another", "id", j.id(), "peer_transfer", id, "err", err)
	}
	req.RequestID = fmt.Sprintf("%s-%d", j.id(), attempt)
	first, err := j.m.cfg.Peers.Reverse(j.ctx, peer, req)
	if err != nil {
		return err
	}
	j.checkpoint(func(c *checkpoint) { c.Peer, c.PeerTransfer = peer, first.ID })
	progress(first)
	if first.State.Final() {
		if first.State == StateSucceeded {
			return nil
		}
		return fmt.Errorf("peer agent %s: its transfer %s %s: %s", peer, first.ID, first.State, first.Err)
	}
	return j.m.cfg.Peers.Follow(j.ctx, peer, first.ID, progress)
}

// removeReversedParts deletes the part files under final (a file's own part files, or those in a
// tree) written since started, after a reversed download failed or was cancelled.
func (j *job) removeReversedParts(final string, started time.Time) {
	dir := path.Dir(final)
	if des, err := fs.ReadDir(j.m.root.FS(), dir); err == nil {
		for _, d := range des {
			if p := path.Join(dir, d.Name()); storage.IsPartOf(final, p) {
				if fi, err := d.Info(); err == nil && !fi.ModTime().Before(started) {
					_ = j.m.root.Remove(p)
				}
			}
		}
	}
	if !j.m.localIsDir(final) {
		return
	}
	_ = fs.WalkDir(j.m.root.FS(), final, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !storage.IsPart(d.Name()) {
			return nil
		}
		if fi, err := d.Info(); err == nil && !fi.ModTime().Before(started) {
			_ = j.m.root.Remove(p)
		}
		return nil
	})
}
