package server

import (
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// MaxGrantLogins bounds GrantAccessRequest.logins: the parallel streams of one transfer.
const MaxGrantLogins = 16

// LoginsGranter is a Granter whose credentials can allow several logins (the sessions of a
// transfer's parallel streams). A Granter without it issues single-use credentials only.
type LoginsGranter interface {
	GrantLogins(path string, write bool, logins int) (user, password string, expires time.Time, err error)
}

// grant issues the credential a GrantAccess asks for and says how many logins it allows.
func (s *Service) grant(path string, write bool, logins int32) (user, pass string, exp time.Time, n int, err error) {
	if logins < 0 || logins > MaxGrantLogins {
		return "", "", time.Time{}, 0, status.Errorf(codes.InvalidArgument, "logins: %d; want 0 to %d", logins, MaxGrantLogins)
	}
	n = max(1, int(logins))
	if lg, ok := s.cfg.Granter.(LoginsGranter); ok {
		user, pass, exp, err = lg.GrantLogins(path, write, n)
	} else {
		n = 1
		user, pass, exp, err = s.cfg.Granter.Grant(path, write)
	}
	if err != nil {
		return "", "", time.Time{}, 0, status.Error(codes.InvalidArgument, fmt.Sprintf("path: %v", err))
	}
	return user, pass, exp, n, nil
}
