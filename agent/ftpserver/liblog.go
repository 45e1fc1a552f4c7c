package ftpserver

import (
	"context"
	"log/slog"
)

// libLog is the handler of ftpserverlib's logger: the library's own records, with the warnings
// that say nothing an operator can act on logged at debug level instead. A client that moved
// its byte range of a file over a parallel stream closes the data connection without a TLS
// close_notify, as it would to end any transfer early; the library then warns that closing
// its side failed, once per stream.
type libLog struct{ slog.Handler }

// quietLibWarnings are the library's warning messages logged at debug level.
var quietLibWarnings = map[string]bool{
	"Problem closing passive connection": true,
}

func (h libLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn && quietLibWarnings[r.Message] {
		if !h.Handler.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		r.Level = slog.LevelDebug
	}
	return h.Handler.Handle(ctx, r)
}

func (h libLog) WithAttrs(as []slog.Attr) slog.Handler { return libLog{h.Handler.WithAttrs(as)} }
func (h libLog) WithGroup(name string) slog.Handler    { return libLog{h.Handler.WithGroup(name)} }
