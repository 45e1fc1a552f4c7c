package ftpclient

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// parseMLSx parses an RFC 3659 fact line "type=file;size=12;modify=20240101120000; name".
// ok is false for an empty line.
func parseMLSx(line string) (e Entry, ok bool, err error) {
	if strings.TrimSpace(line) == "" {
		return Entry{}, false, nil
	}
	facts, name, found := strings.Cut(line, " ")
	if !found || name == "" {
		return Entry{}, false, fmt.Errorf("malformed MLSx line %q", truncate(line, 120))
	}
	e.Name = name
	for _, f := range strings.Split(facts, ";") {
		k, v, _ := strings.Cut(f, "=")
		switch strings.ToLower(k) {
		case "type":
			// Anything else (file, OS.unix=slink:...) is reported as a file.
			if t := strings.ToLower(v); t == "dir" || t == "cdir" || t == "pdir" {
				e.IsDir = true
				if t != "dir" {
					e.Name = map[string]string{"cdir": ".", "pdir": ".."}[t]
				}
			}
		case "size":
			if e.Size, err = strconv.ParseInt(v, 10, 64); err != nil || e.Size < 0 {
				return Entry{}, false, fmt.Errorf("malformed size in MLSx line %q", truncate(line, 120))
			}
		case "modify":
			if e.ModTime, err = parseMLSxTime(v); err != nil {
				return Entry{}, false, fmt.Errorf("malformed modify in MLSx line %q", truncate(line, 120))
			}
		}
	}
	return e, true, nil
}

// parseMLSxTime parses YYYYMMDDHHMMSS[.sss] (UTC), also used by MDTM.
func parseMLSxTime(s string) (time.Time, error) {
	layout := "20060102150405"
	if i := strings.IndexByte(s, '.'); i >= 0 {
		layout += "." + strings.Repeat("0", len(s)-i-1)
	}
	return time.ParseInLocation(layout, s, time.UTC)
}

var months = map[string]time.Month{
	"jan": time.January, "feb": time.February, "mar": time.March, "apr": time.April,
	"may": time.May, "jun": time.June, "jul": time.July, "aug": time.August,
	"sep": time.September, "oct": time.October, "nov": time.November, "dec": time.December,
}

// parseLIST parses one line of a unix "ls -l" listing as vsftpd prints it:
//
//	-rw-r--r--    1 0        0         5242880 Mar 02 12:34 name with  spaces
//	drwxr-xr-x    2 0        0            4096 Mar 02  2023 dir
//
// The group column may be missing. Times are taken as UTC (vsftpd's default,
// use_localtime=NO); a date without a year is in the last twelve months.
// ok is false for lines that carry no entry ("total N", empty).
func parseLIST(line string, now time.Time) (e Entry, ok bool, err error) {
	if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "total ") {
		return Entry{}, false, nil
	}
	bad := fmt.Errorf("unsupported LIST line %q", truncate(line, 120))
	// Field start offsets, so that the name keeps its inner spaces.
	var starts, ends []int
	for i := 0; i < len(line) && len(starts) < 9; {
		for i < len(line) && line[i] == ' ' {
			i++
		}
		if i == len(line) {
			break
		}
		j := i
		for j < len(line) && line[j] != ' ' {
			j++
		}
		starts, ends = append(starts, i), append(ends, j)
		i = j
	}
	field := func(i int) string { return line[starts[i]:ends[i]] }
	if len(starts) < 8 || len(field(0)) < 10 || !strings.ContainsRune("-dlcbps", rune(line[0])) {
		return Entry{}, false, bad
	}
	// Find the month: it follows the size and precedes day and time/year.
	m := -1
	for i := 3; i+3 < len(starts) && i <= 5; i++ {
		if _, isMonth := months[strings.ToLower(field(i))]; isMonth {
			if _, err := strconv.ParseInt(field(i-1), 10, 64); err == nil {
				m = i
				break
			}
		}
	}
	if m < 0 {
		return Entry{}, false, bad
	}
	size, _ := strconv.ParseInt(field(m-1), 10, 64)
	if size < 0 {
		return Entry{}, false, bad
	}
	day, err1 := strconv.Atoi(field(m + 1))
	if err1 != nil || day < 1 || day > 31 {
		return Entry{}, false, bad
	}
	month := months[strings.ToLower(field(m))]
	var mod time.Time
	if hh, mm, isTime := strings.Cut(field(m+2), ":"); isTime {
		h, err1 := strconv.Atoi(hh)
		mi, err2 := strconv.Atoi(mm)
		if err1 != nil || err2 != nil {
			return Entry{}, false, bad
		}
		now = now.UTC()
		mod = time.Date(now.Year(), month, day, h, mi, 0, 0, time.UTC)
		if mod.After(now.Add(24 * time.Hour)) {
			mod = mod.AddDate(-1, 0, 0)
		}
	} else {
		y, err := strconv.Atoi(field(m + 2))
		if err != nil {
			return Entry{}, false, bad
		}
		mod = time.Date(y, month, day, 0, 0, 0, 0, time.UTC)
	}
	nameStart := ends[m+2] + 1
	if nameStart > len(line) {
		return Entry{}, false, bad
	}
	name := line[nameStart:]
	if line[0] == 'l' {
		name, _, _ = strings.Cut(name, " -> ")
	}
	if name == "" {
		return Entry{}, false, bad // "... -> target": a link without a name
	}
	return Entry{Name: name, Size: size, ModTime: mod, IsDir: line[0] == 'd'}, true, nil
}
