package transfer

import "context"

// Observers fans one job's events out to several observers (metrics, the audit log, hook
// plugins), in order. Members that are also a Gate are asked in order too; the first veto wins.
// A nil member is skipped.
type Observers []Observer

// Observe tells every member.
func (all Observers) Observe(e Event) {
	for _, o := range all {
		if o != nil {
			o.Observe(e)
		}
	}
}

// BeforeStart asks every member that is a Gate; the first error stops the job.
func (all Observers) BeforeStart(ctx context.Context, s Snapshot) error {
	for _, o := range all {
		if g, ok := o.(Gate); ok {
			if err := g.BeforeStart(ctx, s); err != nil {
				return err
			}
		}
	}
	return nil
}

// BeforePublish asks every member that is a Gate; the first error keeps the file unpublished.
func (all Observers) BeforePublish(ctx context.Context, s Snapshot, path string) error {
	for _, o := range all {
		if g, ok := o.(Gate); ok {
			if err := g.BeforePublish(ctx, s, path); err != nil {
				return err
			}
		}
	}
	return nil
}

// Progress tells every member that is a ProgressObserver.
func (all Observers) Progress(s Snapshot) {
	for _, o := range all {
		if p, ok := o.(ProgressObserver); ok {
			p.Progress(s)
		}
	}
}
