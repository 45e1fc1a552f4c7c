package transfer

import (
	"fmt"
)

// Update changes a transfer's bandwidth limit (bytes per second, 0 = none besides the agent's)
// while it is queued or running: the copy picks it up within a tenth of a second, and the limit
// is saved with the job, so it holds after a restart. A finished transfer is refused with
// ErrConflict.
func (m *Manager) Update(id string, limitRate int64) (Snapshot, error) {
	if limitRate < 0 {
		return Snapshot{}, invalid("limit_rate", fmt.Sprintf("is %d; want bytes per second, 0 for no limit", limitRate))
	}
	j, err := m.job(id)
	if err != nil {
		return Snapshot{}, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.snap.State.Final() {
		return Snapshot{}, WithKind(ErrConflict, fmt.Errorf("id: transfer %s has finished (%s)", id, j.snap.State))
	}
	j.spec.LimitRate = limitRate
	j.snap.LimitRate = limitRate
	j.thr.limit.Store(limitRate)
	j.publishLocked()
	j.saveOrLogLocked()
	return j.snap, nil
}
