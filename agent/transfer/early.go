package transfer

import (
	"context"
	"sync"
	"time"

	"github.com/ferry-dev/ferry/agent/netcheck"
)

// One grant for a whole attempt to a peer agent, and the parallel streams' sessions opened
// beside the job's own: on a long link each login costs about ten round trips, so the sessions
// of a large file's streams log in at the same time as the job's session, with the same
// credential, instead of after it (and after a second grant).

// attemptState is what one attempt to a peer agent learnt from its grant and opened early.
// Guarded by job.mu.
type attemptState struct {
	grant *Grant
	pre   *preSessions
	spare int // logins of grant that no session has claimed yet
}

// attemptLogins is how many logins the attempt's grant asks for: enough for every parallel
// stream of a single file (logins left unused expire with the credential).
func (j *job) attemptLogins() int {
	if j.spec.Streams > 0 {
		return j.spec.Streams
	}
	return autoStreams
}

// dialRemote opens the job's session to its remote for one attempt; done (never nil when err
// is nil) closes what the attempt opened early and did not use. To a peer agent it asks one
// grant for every stream (attemptLogins); when the grant tells of a single file large enough to
// go over parallel streams (a download), or the local source is one (an upload), the other
// streams' sessions log in at once, beside this one (preSessions).
func (j *job) dialRemote(mode Mode, probe bool) (c Session, done func(), err error) {
	r, write, d := j.plan.remote(), j.plan.dir == Upload, j.m.dialer
	if r.Kind != KindAgent {
		c, err := d.dial(j.ctx, r, mode, write, probe)
		return c, func() {}, err
	}
	g, err := d.grant(j.ctx, r, write, j.attemptLogins())
	if err != nil {
		return nil, nil, err
	}
	l, err := d.grantLogin(g)
	if err != nil {
		return nil, nil, err
	}
	st := attemptState{grant: &g, spare: max(1, g.Logins) - 1}
	if n := j.earlyStreams(g); n > 1 && st.spare >= n-1 {
		st.pre = j.openEarly(l, mode, n-1)
		st.spare -= n - 1
	}
	j.mu.Lock()
	j.att = st
	j.mu.Unlock()
	done = func() {
		j.mu.Lock()
		pre := j.att.pre
		j.att = attemptState{}
		j.mu.Unlock()
		pre.close(j.closeLater)
	}
	c, err = d.dialLogin(j.ctx, l, mode, probe)
	if err != nil {
		done()
		return nil, nil, err
	}
	return c, done, nil
}

// attemptGrant is the current attempt's grant from a peer agent, nil if none.
func (j *job) attemptGrant() *Grant {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.att.grant
}

// takeLogins claims k logins of the attempt's grant, if it has that many left.
func (j *job) takeLogins(k int) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.att.grant == nil || j.att.spare < k {
		return false
	}
	j.att.spare -= k
	return true
}

// earlyStreams is how many streams the attempt's single file will move over, decided from the
// grant alone (the file's size it tells, or the local source's; the round trip the grant
// took), or 1 when the grant does not tell or the source is not a single file.
func (j *job) earlyStreams(g Grant) int {
	from, glob := sourceRoot(j.plan.src)
	if glob != "" {
		return 1
	}
	var size int64
	if j.plan.dir == Download {
		gp := j.described(&g, from)
		if gp == nil || !gp.Exists || gp.IsDir {
			return 1
		}
		size = gp.Size
	} else {
		fi, err := j.m.root.Stat(from)
		if err != nil || !fi.Mode().IsRegular() {
			return 1
		}
		size = fi.Size()
	}
	return j.plannedStreams(size, func() time.Duration { return g.Took })
}

// remoteIsDir reports whether the remote path p is a directory: as the grant described it when
// p is the granted path, else as the FTP server does.
func (j *job) remoteIsDir(c Session, p string) bool {
	if gp := j.described(j.attemptGrant(), p); gp != nil {
		return gp.Exists && gp.IsDir
	}
	st, err := c.Stat(j.ctx, p)
	return err == nil && st.IsDir
}

// preSessions are sessions of a peer agent's grant opened beside the job's own, for the
// parallel streams: each is handed over as soon as it is up.
type preSessions struct {
	ch      chan Session // buffered: the openers never wait; closed once all are done
	planned int
	cancel  context.CancelFunc
}

// openEarly starts k sessions with login l (the job's grant, which allows them) in mode.
func (j *job) openEarly(l netcheck.Login, mode Mode, k int) *preSessions {
	ctx, cancel := context.WithCancel(j.ctx)
	p := &preSessions{ch: make(chan Session, k), planned: k, cancel: cancel}
	d := j.m.dialer
	if mode == ModeAuto {
		mode = ModePassive
	}
	var wg sync.WaitGroup
	for range k {
		wg.Go(func() {
			cfg := d.loginConfig(l, mode)
			s, err := d.connectHeld(ctx, cfg, l.Addr, nil)
			if err != nil {
				if ctx.Err() == nil {
					j.m.log.Debug("parallel stream: session failed", "addr", l.Addr, "err", err)
				}
				return
			}
			p.ch <- s
		})
	}
	go func() { wg.Wait(); close(p.ch) }()
	return p
}

// take returns the next session as soon as one is up; false when none is left (or ctx ended).
func (p *preSessions) take(ctx context.Context) (Session, bool) {
	select {
	case s, ok := <-p.ch:
		return s, ok
	case <-ctx.Done():
		return nil, false
	}
}

// close stops the sessions still opening and closes those nobody took with closeFn. Safe on
// nil.
func (p *preSessions) close(closeFn func(Session)) {
	if p == nil {
		return
	}
	p.cancel()
	for s := range p.ch {
		closeFn(s)
	}
}

// streamSessions hands over up to k more sessions to the job's remote, each as soon as it is
// up: those the attempt opened early, then (when it planned fewer) new ones (extraSessions).
// The channel closes once no more come; the caller must drain it.
func (j *job) streamSessions(ctx context.Context, k int, write bool) <-chan Session {
	out := make(chan Session)
	j.mu.Lock()
	pre := j.att.pre
	j.mu.Unlock()
	go func() {
		defer close(out)
		short := k
		if pre != nil {
			short = k - pre.planned
			for got := 0; got < k; got++ {
				s, ok := pre.take(ctx)
				if !ok {
					break
				}
				out <- s
			}
		}
		if short > 0 && ctx.Err() == nil {
			for _, s := range j.extraSessions(ctx, short, write) {
				out <- s
			}
		}
	}()
	return out
}

// grantedDir reports whether the attempt's grant says p, the granted path, is a directory
// (so an upload into it needs no MKD).
func (j *job) grantedDir(p string) bool {
	gp := j.described(j.attemptGrant(), p)
	return gp != nil && gp.Exists && gp.IsDir
}

// described is what grant g tells of the remote path p: the granting agent's view of it when p
// is the path it granted (the remote's), else nil (the FTP session has to ask).
func (j *job) described(g *Grant, p string) *GrantedPath {
	if g == nil || g.Path == nil || grantPath(j.plan.remote().Path) != p {
		return nil
	}
	return g.Path
}
