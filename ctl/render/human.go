package render

import (
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"
)

var binaryUnits = []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}

// Bytes formats n with binary units: "512 B", "1.0 KiB", "52.4 MiB".
func Bytes(n int64) string {
	if n > -1024 && n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n) / 1024
	i := 0
	// Step up while the value would print as 1024.0 or more once rounded to one decimal.
	for math.Abs(f) >= 1023.95 && i < len(binaryUnits)-1 {
		f /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %s", f, binaryUnits[i])
}

// Rate formats a byte rate: "48.1 MiB/s".
func Rate(bytesPerSecond float64) string {
	if bytesPerSecond < 0 || math.IsNaN(bytesPerSecond) || math.IsInf(bytesPerSecond, 0) {
		bytesPerSecond = 0
	}
	return Bytes(int64(bytesPerSecond)) + "/s"
}

// Duration formats an elapsed time: "35ms" under 0.1s, "2.1s" under a minute, then "1m05s",
// "2h03m00s".
func Duration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	if d < 100*time.Millisecond {
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	if d < time.Minute-50*time.Millisecond {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return hms(d.Round(time.Second))
}

// ETA formats a time left, rounded up to whole seconds: "1s", "59s", "1m05s".
func ETA(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	d = (d + time.Second - 1).Truncate(time.Second)
	if d < time.Minute {
		return fmt.Sprintf("%ds", int64(d/time.Second))
	}
	return hms(d)
}

func hms(d time.Duration) string {
	h := d / time.Hour
	m := (d % time.Hour) / time.Minute
	s := (d % time.Minute) / time.Second
	if h > 0 {
		return fmt.Sprintf("%dh%02dm%02ds", h, m, s)
	}
	return fmt.Sprintf("%dm%02ds", m, s)
}

// Age formats how long ago something happened, coarsely: "5s", "3m", "2h", "4d".
func Age(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int64(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int64(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int64(d/time.Hour))
	default:
		return fmt.Sprintf("%dd", int64(d/(24*time.Hour)))
	}
}

// OneLine folds a possibly multi-line message into one line.
func OneLine(s string) string {
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' })
	out := fields[:0]
	for _, f := range fields {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return strings.Join(out, " ")
}

// partRE matches an agent's hidden part file name (".name.<8 hex>.ferry-part").
var partRE = regexp.MustCompile(`(^|[/\s"'])\.([^/]+?)\.[0-9a-f]{8}\.ferry-part`)

// UserNames replaces part file names in a message with the user's file names (agents do it
// themselves; this covers older ones).
func UserNames(s string) string { return partRE.ReplaceAllString(s, "$1$2") }
