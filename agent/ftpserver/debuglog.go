package ftpserver

import (
	"context"
	"log/slog"
	"strings"
)

// logCommand logs one command at debug level (--log-level debug): the verb and its argument,
// with the argument of PASS and ACCT masked. Called with c.mu held.
func (c *controlConn) logCommand(verb, param string) {
	if !c.s.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	c.s.log.Debug("ftp command", "session", c.sessionID(), "remote", c.raw.RemoteAddr().String(),
		"cmd", verb, "arg", maskArg(verb, param))
}

// logReply logs one reply line at debug level. Called with c.mu held.
func (c *controlConn) logReply(line []byte) {
	if !c.s.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	c.s.log.Debug("ftp reply", "session", c.sessionID(), "line", clip(strings.TrimRight(string(line), "\r\n")))
}

func (c *controlConn) sessionID() uint32 {
	if c.sess == nil {
		return 0
	}
	return c.sess.id
}

// maskArg hides secrets: PASS and ACCT arguments never reach a log.
func maskArg(verb, param string) string {
	switch verb {
	case "PASS", "ACCT":
		if param != "" {
			return "*****"
		}
	}
	return clip(param)
}

func clip(s string) string {
	if len(s) > 256 {
		return s[:256] + "..."
	}
	return s
}
