package ftpserver

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestLibLogQuietsCloseWarnings: the library's warning about closing a passive connection a
// client already closed is logged at debug level (shown only when debug is on); its other
// warnings stay warnings.
func TestLibLogQuietsCloseWarnings(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		var buf bytes.Buffer
		log := slog.New(libLog{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: level})}).With("component", "ftpserverlib")
		log.Warn("Problem closing passive connection", "err", "tls: failed to send closeNotify alert")
		log.Warn("Problem closing a transfer", "err", "x")
		out := buf.String()
		if !strings.Contains(out, `level=WARN msg="Problem closing a transfer"`) {
			t.Errorf("level %v: another warning lost or changed: %q", level, out)
		}
		quiet := strings.Contains(out, `level=DEBUG msg="Problem closing passive connection"`) && strings.Contains(out, "component=ftpserverlib")
		if loud := strings.Contains(out, `level=WARN msg="Problem closing passive connection"`); loud || quiet != (level == slog.LevelDebug) {
			t.Errorf("level %v: %q", level, out)
		}
	}
}
