package transfer

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-dev/ferry/agent/ftpclient"
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
	known, ok := j.m.modes.get(remote.Host)
	if ok {
		reason = fmt.Sprintf("auto: %s worked with %s recently", known, remote.Host)
		switch {
		case known.reversed && canReverse:
			err := j.reverse(reason)
			if err == nil {
				j.m.modes.put(remote.Host, known)
				return nil
			}
			j.m.modes.forget(remote.Host)
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
			j.m.modes.put(remote.Host, route{mode: mode})
			return nil
		}
		why, next := j.blocked(mode, err)
		if !next {
			return err
		}
		if ok {
			j.m.modes.forget(remote.Host)
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
	j.m.modes.put(remote.Host, route{reversed: true})
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
	if j.bytes.Load() != 0 || j.ctx.Err() != nil {
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
	req := ReverseRequest{PeerPath: remote.Path, LocalPath: local.Path, PeerSends: j.plan.dir == Download}
	if req.PeerSends && local.Dir && local.Path != "." {
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
	req.User, req.Password = g.User, g.Password
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
	err = j.m.cfg.Peers.Reverse(j.ctx, remote.Host, req, func(ps Snapshot) {
		j.bytes.Store(ps.BytesDone)
		j.update(func(s *Snapshot) {
			s.PeerTransfer = ps.ID
			s.BytesTotal, s.FilesTotal, s.FilesDone, s.CurrentFile = ps.BytesTotal, ps.FilesTotal, ps.FilesDone, ps.CurrentFile
			if ps.Mode != ModeAuto {
				s.Mode = ps.Mode
				s.ModeReason = fmt.Sprintf("%s in %s mode", prefix, ps.Mode)
				if ps.ModeReason != "" {
					s.ModeReason += " (peer's " + ps.ModeReason + ")"
				}
			}
			if ps.State == StateSucceeded {
				s.SHA256, s.Verified = ps.SHA256, ps.Verified
			}
		})
	})
	if err != nil && req.PeerSends {
		// The peer cannot remove its part files here: its one-time login is spent. Reverse
		// returns once the peer's transfer has ended, so this agent removes them itself.
		j.removeParts(final, started)
	}
	return err
}

// removeParts deletes the part files under final (a file's own part file, or those in a tree)
// written since started, after a reversed download failed or was cancelled.
func (j *job) removeParts(final string, started time.Time) {
	_ = j.m.root.Remove(partName(final))
	if !j.localIsDir(final) {
		return
	}
	_ = fs.WalkDir(j.m.root.FS(), final, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(d.Name(), ".ferry-part") {
			return nil
		}
		if fi, err := d.Info(); err == nil && !fi.ModTime().Before(started) {
			_ = j.m.root.Remove(p)
		}
		return nil
	})
}
