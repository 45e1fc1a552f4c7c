package daemon

import (
	"time"

	"github.com/ferry-dev/ferry/agent/ftpserver"
)

// GrantLogins issues a credential good for logins logins (the sessions of parallel streams).
func (g granter) GrantLogins(path string, write bool, logins int) (string, string, time.Time, error) {
	access := ftpserver.AccessRead
	if write {
		access = ftpserver.AccessWrite
	}
	exp := time.Now().Add(g.d.cfg.GrantTTL)
	user, pass, err := g.d.ftp.IssueCredential(ftpserver.Scope{Path: path, Access: access, TTL: g.d.cfg.GrantTTL, Logins: logins})
	return user, pass, exp, err
}
