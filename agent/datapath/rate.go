package datapath

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ParseRate parses a bandwidth in bytes per second: a number with an optional K, M, G or T
// suffix (powers of 1024; "50M" is 50 MiB/s, "1.5G" works), an optional trailing "B" or "/s"
// ("50MB/s"), or 0 for no limit.
func ParseRate(s string) (int64, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimSuffix(strings.TrimSuffix(t, "/s"), "/S")
	t = strings.TrimSuffix(strings.TrimSuffix(t, "iB"), "B")
	mult := 1.0
	if t != "" {
		switch t[len(t)-1] {
		case 'k', 'K':
			mult = 1 << 10
		case 'm', 'M':
			mult = 1 << 20
		case 'g', 'G':
			mult = 1 << 30
		case 't', 'T':
			mult = 1 << 40
		}
		if mult != 1 {
			t = t[:len(t)-1]
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%q is not a rate: want bytes per second such as 500K, 50M or 1G (0: no limit)", s)
	}
	if f < 0 {
		return 0, fmt.Errorf("%q is negative: want bytes per second, 0 for no limit", s)
	}
	v := f * mult
	if v > math.MaxInt64/2 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return int64(v), nil
}

// FormatRate writes a bandwidth in bytes per second the way ParseRate reads it ("0" = none).
func FormatRate(bps int64) string {
	units := []string{"", "K", "M", "G", "T"}
	v := float64(bps)
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if v == math.Trunc(v) {
		return strconv.FormatFloat(v, 'f', -1, 64) + units[i]
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + units[i]
}
