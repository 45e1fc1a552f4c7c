package ftpserver

import (
	"errors"
	"net"
	"time"
)

// errLoginFlood: so many login attempts from one source already wait out their delay that one
// more is refused (replyLoginFlood) and its connection closed.
var errLoginFlood = errors.New("too many failed logins from this address")

const replyLoginFlood = "421 Too many failed logins from your address, try again later."

// checkLogin waits out the login delay of remote's source (limits.go), authenticates user/pass
// and logs the outcome: user and address, never the password; the reason for a refusal goes to
// the log only, the client gets a uniform answer. It returns errAuth for a refused login,
// errLoginFlood, or net.ErrClosed when quit is closed during the wait.
func (s *Server) checkLogin(quit <-chan struct{}, user, pass string, remote net.Addr, tls bool) (policy, error) {
	logUser := user
	if len(logUser) > 64 {
		logUser = logUser[:64] + "..."
	}
	key := sourceKey(remote)
	wait, ok := s.logins.admit(key)
	if !ok {
		s.log.Warn("ftp login refused", "user", logUser, "remote", remote.String(), "reason", errLoginFlood.Error())
		return policy{}, errLoginFlood
	}
	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-quit:
			t.Stop()
			return policy{}, net.ErrClosed
		}
	}
	pol, reason := s.authenticateUntil(quit, user, pass, remote, tls)
	if reason != nil {
		next := s.logins.failed(key)
		s.log.Warn("ftp login refused", "user", logUser, "remote", remote.String(), "reason", reason.Error(),
			"waited", wait.Round(time.Millisecond).String(), "nextDelay", next.String())
		return policy{}, errAuth // same answer whatever the reason
	}
	s.log.Info("ftp login", "user", logUser, "remote", remote.String(), "access", pol.String())
	return pol, nil
}
