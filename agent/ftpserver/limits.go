package ftpserver

import (
	"net"
	"sync"
	"time"
)

// Flood limits: how many control connections a source may hold (Server.admit, called by the
// accepting listener) and how fast it may guess passwords (loginLimiter, called by the control
// filter's PASS).

// sourceKey names the source of a connection for the limits: its IP address, or for IPv6 its
// /64 (one host usually holds a whole /64, so counting addresses would count nothing).
func sourceKey(a net.Addr) string {
	ip, ok := addrIP(a)
	if !ok {
		return a.String()
	}
	if ip.Is4() {
		return ip.String()
	}
	p, _ := ip.Prefix(64)
	return p.String()
}

// replyTooMany is sent to control connections beyond Config.MaxConns/MaxConnsPerIP.
const replyTooMany = "421 Too many connections, try again later.\r\n"

// admitLocked counts a new control connection from key, or refuses it (the caller answers 421 and
// closes it). Called with s.mu held; released by release.
func (s *Server) admitLocked(key string) bool {
	if s.v.maxConns > 0 && s.live >= s.v.maxConns {
		return false
	}
	if s.v.maxPerIP > 0 && s.perIP[key] >= s.v.maxPerIP {
		return false
	}
	s.perIP[key]++
	return true
}

// releaseLocked undoes admitLocked when the session ends. Called with s.mu held.
func (s *Server) releaseLocked(key string) {
	if n := s.perIP[key]; n > 1 {
		s.perIP[key] = n - 1
	} else {
		delete(s.perIP, key)
	}
}

// refuse answers 421 on a control connection over the limits and closes it. The reply fits in
// any socket buffer; the deadline only guards against a broken one.
func (s *Server) refuse(c net.Conn, key string) {
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Write([]byte(replyTooMany))
	_ = c.Close()
	s.mu.Lock()
	s.refused++
	n, warn := s.refused, time.Since(s.refusedLog) >= 10*time.Second
	if warn {
		s.refusedLog = time.Now()
		s.refused = 0
	}
	s.mu.Unlock()
	// One warning per 10 s at most: a flood must not flood the log too.
	if warn {
		s.log.Warn("ftp connections refused: too many", "source", key, "refused", n,
			"maxConns", s.v.maxConns, "maxConnsPerIP", s.v.maxPerIP)
	} else {
		s.log.Debug("ftp connection refused: too many", "source", key)
	}
}

// loginLimiter slows password guessing per source address. Each failed login raises the
// source's step; the next attempt from that source waits base<<(step-1), capped at max, counted
// from the later of the failure and the previous admitted attempt, so that parallel
// connections from one source are serialized too and gain nothing. A step is forgiven per quiet
// period without failures. Success does not reset the step (an anonymous or known login would
// otherwise let a guesser reset its own delay).
type loginLimiter struct {
	base, max, quiet time.Duration
	now              func() time.Time

	mu sync.Mutex
	m  map[string]*loginState
}

type loginState struct {
	step int       // failures not yet forgiven
	last time.Time // last failure, or the time up to which steps were forgiven
	next time.Time // earliest time the next attempt is checked
}

const (
	loginQuiet      = time.Minute
	loginMaxSources = 10000 // sources remembered before forgiven ones are dropped
	loginMaxQueue   = 4     // attempts from one source waiting at most, in maximum delays
)

func newLoginLimiter(base, maxDelay time.Duration) *loginLimiter {
	if base <= 0 {
		return nil
	}
	return &loginLimiter{base: base, max: maxDelay, quiet: loginQuiet, now: time.Now, m: map[string]*loginState{}}
}

func (l *loginLimiter) delay(step int) time.Duration {
	d := l.base
	for i := 1; i < step && d < l.max; i++ {
		d *= 2
	}
	return min(d, l.max)
}

// decay forgives one step per quiet period since the last failure.
func (l *loginLimiter) decay(st *loginState, now time.Time) {
	if st.step == 0 {
		return
	}
	if n := int(now.Sub(st.last) / l.quiet); n > 0 {
		st.step = max(0, st.step-n)
		st.last = st.last.Add(time.Duration(n) * l.quiet)
	}
}

// admit returns how long a login attempt from key must wait before its password is checked,
// and reserves that slot; ok is false (nothing reserved) when the wait would exceed
// loginMaxQueue times the maximum delay: so many attempts are already queued that this one is
// refused outright. A nil limiter never waits.
func (l *loginLimiter) admit(key string) (wait time.Duration, ok bool) {
	if l == nil {
		return 0, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.m[key]
	if st == nil {
		return 0, true
	}
	now := l.now()
	l.decay(st, now)
	if st.step == 0 {
		if !now.Before(st.next) {
			delete(l.m, key)
		}
		return max(0, st.next.Sub(now)), true
	}
	at := st.next
	if at.Before(now) {
		at = now
	}
	if at.Sub(now) > loginMaxQueue*l.max {
		return 0, false
	}
	st.next = at.Add(l.delay(st.step))
	return at.Sub(now), true
}

// failed records a failed login from key and returns the delay now imposed on its next attempt.
func (l *loginLimiter) failed(key string) time.Duration {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	st := l.m[key]
	if st == nil {
		if len(l.m) >= loginMaxSources {
			l.pruneLocked(now)
		}
		st = &loginState{}
		l.m[key] = st
	}
	l.decay(st, now)
	st.step++
	st.last = now
	d := l.delay(st.step)
	if next := now.Add(d); next.After(st.next) {
		st.next = next
	}
	return d
}

// pruneLocked drops the sources with nothing left to remember, then, if there are still too
// many, those without a failure for a quiet period (memory stays bounded under a flood from
// many addresses; such a source merely loses part of its delay).
func (l *loginLimiter) pruneLocked(now time.Time) {
	for k, st := range l.m {
		l.decay(st, now)
		if st.step == 0 && !now.Before(st.next) {
			delete(l.m, k)
		}
	}
	for k, st := range l.m {
		if len(l.m) < loginMaxSources {
			break
		}
		if now.Sub(st.last) > l.quiet {
			delete(l.m, k)
		}
	}
}
