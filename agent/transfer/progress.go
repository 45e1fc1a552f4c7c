package transfer

import (
	"math"
	"time"
)

// Progress: the copy loops (files.go) add the bytes of each step — a 512 KiB buffer written, an
// 8 MiB sendfile — to the job's atomic counter (job.add); a per-job ticker samples it. The
// SFTPGo/rclone accounting pattern, at one atomic add per step instead of per read.

// rateMeter smooths the transfer rate with an exponential moving average over samples.
type rateMeter struct {
	lastBytes int64
	lastAt    time.Time
	rate      float64
}

// halfLife of the moving average: old samples weigh half after this long.
const halfLife = 2 * time.Second

func (r *rateMeter) sample(bytes int64, now time.Time) float64 {
	if r.lastAt.IsZero() {
		r.lastBytes, r.lastAt = bytes, now
		return 0
	}
	dt := now.Sub(r.lastAt)
	if dt <= 0 {
		return r.rate
	}
	inst := float64(bytes-r.lastBytes) / dt.Seconds()
	// weight of the new sample for an EMA with the given half-life
	alpha := 1 - math.Exp2(-dt.Seconds()/halfLife.Seconds())
	if r.rate == 0 {
		r.rate = inst
	} else {
		r.rate += alpha * (inst - r.rate)
	}
	r.lastBytes, r.lastAt = bytes, now
	return r.rate
}

// eta is the time left at the given rate, or -1 when unknown.
func eta(done, total int64, rate float64) time.Duration {
	if total <= 0 || rate <= 0 || done > total {
		return -1
	}
	return time.Duration(float64(total-done) / rate * float64(time.Second)).Round(time.Second / 10)
}
