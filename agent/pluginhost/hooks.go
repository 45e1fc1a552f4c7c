package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ferry-dev/ferry/agent/ftpserver"
	"github.com/ferry-dev/ferry/agent/transfer"
	"github.com/ferry-dev/ferry/plugins"
)

// Hooks are the hook plugins as the agent's extension points see them: a transfer.Observer and
// transfer.Gate (append it to the engine's Observers) and an ftpserver.EventSink. Each plugin
// gets its events one at a time, in order, from a queue of its own; checks go through the same
// queue (so a check never overtakes an event told before it) and wait for their answer.
type Hooks struct {
	procs []*proc
}

// Hooks returns the hook plugins, or nil when no plugin is a hook.
func (h *Host) Hooks() *Hooks { return h.hooks }

var (
	_             transfer.Observer   = (*Hooks)(nil)
	_             transfer.Gate       = (*Hooks)(nil)
	_             ftpserver.EventSink = (*Hooks)(nil)
	errQueueFull                      = errors.New("event queue full")
	transferKinds                     = map[transfer.EventKind]plugins.EventKind{
		transfer.EventQueued:        plugins.KindQueued,
		transfer.EventStarted:       plugins.KindStarted,
		transfer.EventAttemptFailed: plugins.KindAttemptFailed,
		transfer.EventSucceeded:     plugins.KindSucceeded,
		transfer.EventFailed:        plugins.KindFailed,
		transfer.EventCancelled:     plugins.KindCancelled,
	}
	ftpKinds = map[ftpserver.EventKind]plugins.EventKind{
		ftpserver.EventWrite:  plugins.KindFTPUploaded,
		ftpserver.EventDelete: plugins.KindFTPDeleted,
		ftpserver.EventRename: plugins.KindFTPRenamed,
	}
)

// item is one event for a hook's worker; reply is set for checks.
type item struct {
	e     plugins.Event
	ctx   context.Context
	reply chan error
}

// Observe queues a transfer event for every hook (never blocks; a full queue drops it).
func (hs *Hooks) Observe(e transfer.Event) {
	k, ok := transferKinds[e.Kind]
	if !ok {
		return
	}
	ev := plugins.Event{Kind: k, Time: time.Now(), Transfer: transferOf(e.Transfer)}
	if e.Err != nil {
		ev.Error = e.Err.Error()
	}
	hs.tell(ev)
}

// FTPEvent queues an FTP file event (uploaded, deleted, renamed) for every hook; other kinds
// (logins, reads, directories) are not passed to hooks.
func (hs *Hooks) FTPEvent(e ftpserver.Event) {
	k, ok := ftpKinds[e.Kind]
	if !ok || e.Err != nil {
		return
	}
	f := &plugins.FileEvent{User: e.User, TLS: e.TLS, Path: e.Path, To: e.To, Bytes: e.Bytes}
	if e.Remote.IsValid() {
		f.Remote = e.Remote.String()
	}
	t := e.Time
	if t.IsZero() {
		t = time.Now()
	}
	hs.tell(plugins.Event{Kind: k, Time: t, File: f})
}

func (hs *Hooks) tell(ev plugins.Event) {
	for _, p := range hs.procs {
		select {
		case p.queue <- item{e: ev}:
		default:
			if n := p.dropped.Add(1); n&(n-1) == 0 { // log the 1st, 2nd, 4th, 8th... drop
				p.h.log.Warn("hook event dropped", "plugin", p.name, "err", errQueueFull, "dropped", n)
			}
		}
	}
}

// BeforeFTPPublish asks every hook whether a file a Ferry agent pushed to this agent's FTP
// server may take its final name (ftpserver.PublishGate): a before_publish check with File set
// and Path the final name, root-relative.
func (hs *Hooks) BeforeFTPPublish(ctx context.Context, e ftpserver.Event) error {
	f := &plugins.FileEvent{User: e.User, TLS: e.TLS, Path: e.Path, To: e.To}
	if e.Remote.IsValid() {
		f.Remote = e.Remote.String()
	}
	return hs.check(ctx, plugins.Event{Kind: plugins.KindBeforePublish, Time: time.Now(), File: f,
		Path: strings.TrimPrefix(e.To, "/")})
}

// BeforeStart asks every hook, in --plugin order; the first deny stops the transfer.
func (hs *Hooks) BeforeStart(ctx context.Context, s transfer.Snapshot) error {
	return hs.check(ctx, plugins.Event{Kind: plugins.KindBeforeStart, Time: time.Now(), Transfer: transferOf(s)})
}

// BeforePublish asks every hook whether a received file may take its final name path.
func (hs *Hooks) BeforePublish(ctx context.Context, s transfer.Snapshot, path string) error {
	return hs.check(ctx, plugins.Event{Kind: plugins.KindBeforePublish, Time: time.Now(), Transfer: transferOf(s), Path: path})
}

func (hs *Hooks) check(ctx context.Context, ev plugins.Event) error {
	for _, p := range hs.procs {
		if err := p.check(ctx, ev); err != nil {
			return err
		}
	}
	return nil
}

// check queues a check behind the events already told and waits for its answer. A deny is
// "hook NAME: REASON"; a plugin down, failing or too slow follows the hook's fail setting.
func (p *proc) check(ctx context.Context, ev plugins.Event) error {
	it := item{e: ev, ctx: ctx, reply: make(chan error, 1)}
	wait := time.NewTimer(2 * p.h.cfg.Timeout) // the queue ahead, then the call itself
	defer wait.Stop()
	var err error
	select {
	case p.queue <- it:
		select {
		case err = <-it.reply:
		case <-wait.C:
			err = fmt.Errorf("plugin %s: no answer within %v", p.name, 2*p.h.cfg.Timeout)
		case <-ctx.Done():
			return ctx.Err()
		case <-p.h.closing:
			err = fmt.Errorf("plugin %s: agent shutting down", p.name)
		}
	case <-wait.C:
		err = fmt.Errorf("plugin %s: %w", p.name, errQueueFull)
	case <-ctx.Done():
		return ctx.Err()
	}
	var d denied
	switch {
	case err == nil:
		return nil
	case errors.As(err, &d):
		return err
	case p.spec.FailOpen:
		p.h.log.Warn("hook unavailable; allowing (fail-open)", "plugin", p.name, "check", string(ev.Kind), "err", err)
		return nil
	}
	return fmt.Errorf("hook %s unavailable, refusing (fail-closed): %w", p.name, err)
}

// denied is a hook's deny: its reason becomes the transfer's error.
type denied struct{ plugin, reason string }

func (d denied) Error() string {
	if d.reason == "" {
		return fmt.Sprintf("hook %s denied", d.plugin)
	}
	return fmt.Sprintf("hook %s: %s", d.plugin, d.reason)
}

// worker sends a hook's events and checks one at a time.
func (p *proc) worker() {
	defer p.h.wg.Done()
	for {
		var it item
		select {
		case <-p.h.closing:
			return
		case it = <-p.queue:
		}
		if it.reply == nil {
			err := p.call(context.Background(), func(ctx context.Context, c *plugins.Client) error {
				return c.Hook().Notify(ctx, it.e)
			})
			if err != nil {
				p.dropped.Add(1)
				p.h.log.Warn("hook event not delivered", "plugin", p.name, "event", string(it.e.Kind), "err", err)
			}
			continue
		}
		if it.ctx.Err() != nil {
			it.reply <- it.ctx.Err()
			continue
		}
		var d plugins.Decision
		err := p.call(it.ctx, func(ctx context.Context, c *plugins.Client) (err error) {
			d, err = c.Hook().Check(ctx, it.e)
			return err
		})
		if err == nil && !d.Allow {
			err = denied{p.name, d.Reason}
		}
		it.reply <- err
	}
}

func transferOf(s transfer.Snapshot) *plugins.Transfer {
	dir := "download"
	if s.Direction == transfer.Upload {
		dir = "upload"
	}
	return &plugins.Transfer{
		ID: s.ID, Source: s.Source, Destination: s.Destination, Direction: dir, State: s.State.String(),
		BytesDone: s.BytesDone, BytesTotal: s.BytesTotal, FilesDone: s.FilesDone, FilesTotal: s.FilesTotal,
		Attempt: s.Attempt, SHA256: s.SHA256, Error: s.Err, Owner: s.Owner, RequestID: s.RequestID,
	}
}
