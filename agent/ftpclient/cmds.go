package ftpclient

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path"
	"strconv"
	"strings"
	"time"
)

// Entry is a file or directory on the server.
type Entry struct {
	Name    string // base name (List) or the base of the path asked (Stat)
	Size    int64
	ModTime time.Time // UTC; zero if unknown
	IsDir   bool
}

// simple runs one command expecting one of codes.
func (c *Client) simple(ctx context.Context, verb, arg string, codes ...int) (*reply, error) {
	var r *reply
	err := c.do(ctx, verb+" "+arg, func() error {
		if err := checkArg(arg); err != nil {
			return fmt.Errorf("argument %w", err)
		}
		var err error
		r, err = c.expect(verb+" "+arg, codes...)
		return err
	})
	return r, err
}

// Size returns the size of the file at path (SIZE).
func (c *Client) Size(ctx context.Context, path string) (int64, error) {
	r, err := c.simple(ctx, "SIZE", path, 213)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(r.msg()), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("ftp SIZE %s: malformed reply %q", path, truncate(r.msg(), 80))
	}
	return n, nil
}

// Mkdir creates the directory path (MKD).
func (c *Client) Mkdir(ctx context.Context, path string) error {
	_, err := c.simple(ctx, "MKD", path, 257, 250)
	return err
}

// MkdirAll creates path and its missing parents. A failing MKD on a
// directory that already exists (vsftpd answers 550) is not an error.
func (c *Client) MkdirAll(ctx context.Context, p string) error {
	var prefix string
	if strings.HasPrefix(p, "/") {
		prefix = "/"
	}
	for _, part := range strings.Split(p, "/") {
		if part == "" || part == "." {
			continue
		}
		prefix = path.Join(prefix, part)
		err := c.Mkdir(ctx, prefix)
		if err == nil {
			continue
		}
		var re *ReplyError
		if !errors.As(err, &re) || re.Code/100 != 5 {
			return err
		}
		if isDir, serr := c.isDir(ctx, prefix); serr != nil || !isDir {
			return err
		}
	}
	return nil
}

// Rename renames from to to (RNFR/RNTO).
//
// To an agent (login pipelining) RNFR and RNTO go in one write: one round trip, not two. A
// refused RNFR makes the agent refuse the RNTO behind it (503), whose reply is read and
// dropped; the error is RNFR's, as it is one command at a time.
func (c *Client) Rename(ctx context.Context, from, to string) error {
	if !c.pipelined {
		if _, err := c.simple(ctx, "RNFR", from, 350); err != nil {
			return err
		}
		_, err := c.simple(ctx, "RNTO", to, 250)
		return err
	}
	var rntoErr error
	err := c.do(ctx, "RNFR "+from, func() error {
		for _, a := range []string{from, to} {
			if err := checkArg(a); err != nil {
				return fmt.Errorf("argument %w", err)
			}
		}
		if err := c.sendAll([]string{"RNFR " + from, "RNTO " + to}); err != nil {
			return err
		}
		if _, err := c.expectReply(350); err != nil {
			if _, rerr := c.readFinal(c.cfg.ReplyTimeout); rerr != nil {
				return rerr // the session is failed; RNFR's refusal is lost with it
			}
			return err
		}
		_, rntoErr = c.expectReply(250)
		var re *ReplyError
		if errors.As(rntoErr, &re) {
			return nil // reported below, as RNTO's
		}
		return rntoErr
	})
	if err != nil {
		return err
	}
	if rntoErr != nil {
		return fmt.Errorf("ftp RNTO %s: %w", to, rntoErr)
	}
	return nil
}

// Delete deletes the file at path (DELE).
func (c *Client) Delete(ctx context.Context, path string) error {
	_, err := c.simple(ctx, "DELE", path, 250)
	return err
}

// Hash returns the SHA-256 of the file at path, in lower-case hex, using the
// HASH command (draft-bryan-ftpext-hash). The command is tried even if FEAT
// does not list it; if the server does not know it, the error wraps
// ErrUnsupported. The reply is awaited for ReplyTimeout: for a large file
// use HashSize.
func (c *Client) Hash(ctx context.Context, path string) (string, error) {
	return c.hash(ctx, path, -1, c.cfg.ReplyTimeout)
}

// HashSize is Hash for a file of size bytes: the server reads the whole file
// before it answers, so the reply is awaited for ReplyTimeout +
// size/HashRate (a 10 GB file at the default 50 MB/s: 230s).
func (c *Client) HashSize(ctx context.Context, path string, size int64) (string, error) {
	return c.hash(ctx, path, size, c.hashTimeout(size))
}

// hashTimeout is the reply timeout for hashing n bytes.
func (c *Client) hashTimeout(n int64) time.Duration {
	if n <= 0 {
		return c.cfg.ReplyTimeout
	}
	extra := time.Duration(float64(n) / float64(c.cfg.HashRate) * float64(time.Second))
	return c.cfg.ReplyTimeout + extra
}

// hash asks HASH of path, unless the last transfer's 226 gave the digest of path at size
// bytes (size < 0: unknown, always ask).
func (c *Client) hash(ctx context.Context, path string, size int64, timeout time.Duration) (string, error) {
	if c.noHash {
		return "", fmt.Errorf("ftp HASH %s: %w", path, ErrUnsupported)
	}
	if sum, ok := c.takeTransferDigest(path, size); ok {
		return sum, nil
	}
	var sum string
	err := c.do(ctx, "HASH "+path, func() error {
		if err := checkArg(path); err != nil {
			return fmt.Errorf("argument %w", err)
		}
		arg := path
		for try := 0; ; try++ {
			r, err := c.cmdTimeout("HASH "+arg, timeout)
			if err != nil {
				return err
			}
			if (r.Code == 550 || r.Code == 501) && arg == path && quoteParam(path) != path {
				// ftpserverlib splits HASH's argument at spaces unless
				// quoted (csv rules); the draft sends the path as is.
				arg = quoteParam(path)
				try--
				continue
			}
			switch r.Code {
			case 213:
			case 500, 502, 504:
				c.noHash = true
				return fmt.Errorf("%w (%w)", ErrUnsupported, r.err())
			default:
				return r.err()
			}
			algo, hexSum, err := parseHash(r)
			if err != nil {
				return err
			}
			if algo == "SHA-256" {
				sum = hexSum
				return nil
			}
			if try > 0 {
				return fmt.Errorf("%w: server hashes with %s, not SHA-256", ErrUnsupported, algo)
			}
			r, err = c.cmd("OPTS HASH SHA-256")
			if err != nil {
				return err
			}
			if r.Code != 200 {
				return fmt.Errorf("%w: server hashes with %s and refuses SHA-256 (%w)", ErrUnsupported, algo, r.err())
			}
		}
	})
	return sum, err
}

// HashRange returns the SHA-256, in lower-case hex, of the bytes [start,end)
// of the file at path, using the XSHA256 command of ftpserverlib (Ferry's
// own server): "XSHA256 <path> <start> <end>", answered "250-Computing
// SHA-256 digest" / "250 <hex>". ftpserverlib hashes up to the end of the
// file when end is beyond it. The reply is awaited for ReplyTimeout +
// (end-start)/HashRate. A server without the command (500, 502, 504) gives
// an error wrapping ErrUnsupported.
func (c *Client) HashRange(ctx context.Context, path string, start, end int64) (string, error) {
	line := fmt.Sprintf("XSHA256 %s %d %d", quoteParam(path), start, end)
	if start < 0 || end < start {
		return "", fmt.Errorf("ftp %s: invalid range", line)
	}
	if c.noXSHA256 {
		return "", fmt.Errorf("ftp %s: %w", line, ErrUnsupported)
	}
	var sum string
	err := c.do(ctx, line, func() error {
		if err := checkArg(path); err != nil {
			return fmt.Errorf("argument %w", err)
		}
		r, err := c.cmdTimeout(line, c.hashTimeout(end-start))
		if err != nil {
			return err
		}
		switch r.Code {
		case 250, 213:
		case 500, 502, 504:
			c.noXSHA256 = true
			return fmt.Errorf("%w (%w)", ErrUnsupported, r.err())
		default:
			return r.err()
		}
		for _, f := range strings.Fields(r.Lines[len(r.Lines)-1]) {
			if _, err := hex.DecodeString(f); err == nil && len(f) == 64 {
				sum = strings.ToLower(f)
				return nil
			}
		}
		return fmt.Errorf("ftp: malformed XSHA256 reply from %s: %q", c.cfg.Addr, excerpt(r.msg(), excerptLen))
	})
	return sum, err
}

// quoteParam quotes a path for ftpserverlib's space-separated parameters
// (encoding/csv rules: double quotes, inner quotes doubled) when it holds a
// space or a quote.
func quoteParam(p string) string {
	if !strings.ContainsAny(p, " \"") && p != "" {
		return p
	}
	return `"` + strings.ReplaceAll(p, `"`, `""`) + `"`
}

// parseHash parses the last line of a HASH reply:
// "SHA-256 0-49 169cd22282da7f147cb491e559e9dd filename".
func parseHash(r *reply) (algo, sum string, err error) {
	f := strings.Fields(r.Lines[len(r.Lines)-1])
	if len(f) < 3 {
		return "", "", fmt.Errorf("ftp: malformed HASH reply %q", truncate(r.msg(), 120))
	}
	sum = strings.ToLower(f[2])
	if _, err := hex.DecodeString(sum); err != nil || sum == "" {
		return "", "", fmt.Errorf("ftp: malformed HASH reply %q", truncate(r.msg(), 120))
	}
	algo = strings.ToUpper(f[0])
	if algo == "SHA-256" && len(sum) != 64 {
		return "", "", fmt.Errorf("ftp: malformed SHA-256 in HASH reply %q", truncate(r.msg(), 120))
	}
	return algo, sum, nil
}

// Stat returns information about path: MLST when the server has it, else
// SIZE and MDTM for a file, or a CWD test for a directory.
func (c *Client) Stat(ctx context.Context, p string) (Entry, error) {
	if _, ok := c.features["MLST"]; ok {
		r, err := c.simple(ctx, "MLST", p, 250)
		if err != nil {
			return Entry{}, err
		}
		return mlstEntry(p, r)
	}

	e := Entry{Name: path.Base(p)}
	size, serr := c.Size(ctx, p)
	if serr != nil {
		if !IsPermanent(serr) {
			return Entry{}, serr
		}
		isDir, err := c.isDir(ctx, p)
		if err != nil {
			return Entry{}, err
		}
		if !isDir {
			return Entry{}, serr // typically 550: no such file
		}
		e.IsDir = true
		return e, nil
	}
	e.Size = size
	r, err := c.simple(ctx, "MDTM", p, 213)
	if err == nil {
		e.ModTime, _ = parseMLSxTime(strings.TrimSpace(r.msg()))
	} else if !IsPermanent(err) {
		return Entry{}, err
	}
	return e, nil
}

// isDir reports whether p is a directory: MLST, or CWD into it and back.
func (c *Client) isDir(ctx context.Context, p string) (bool, error) {
	if _, ok := c.features["MLST"]; ok {
		e, err := c.Stat(ctx, p)
		if IsPermanent(err) {
			return false, nil
		}
		return e.IsDir, err
	}
	var isDir bool
	err := c.do(ctx, "CWD "+p, func() error {
		if err := checkArg(p); err != nil {
			return fmt.Errorf("argument %w", err)
		}
		r, err := c.expect("PWD", 257)
		if err != nil {
			return err
		}
		pwd, err := parsePWD(r.msg())
		if err != nil {
			return err
		}
		if r, err = c.cmd("CWD " + p); err != nil {
			return err
		}
		if r.Code != 250 {
			return nil
		}
		isDir = true
		_, err = c.expect("CWD "+pwd, 250)
		return err
	})
	return isDir, err
}

// parsePWD extracts the directory from `"/a ""quoted"" dir" is current`.
func parsePWD(msg string) (string, error) {
	i := strings.IndexByte(msg, '"')
	if i < 0 {
		return "", fmt.Errorf("ftp: malformed PWD reply %q", truncate(msg, 80))
	}
	var b strings.Builder
	for j := i + 1; j < len(msg); j++ {
		if msg[j] != '"' {
			b.WriteByte(msg[j])
			continue
		}
		if j+1 < len(msg) && msg[j+1] == '"' {
			b.WriteByte('"')
			j++
			continue
		}
		return b.String(), nil
	}
	return "", fmt.Errorf("ftp: malformed PWD reply %q", truncate(msg, 80))
}

// maxListLine bounds one line of a listing.
const maxListLine = 64 << 10

// List lists the directory dir: MLSD when the server has it, else LIST in
// the unix "ls -l" format. "." and ".." are omitted. The listing is bounded
// like ListFunc's.
func (c *Client) List(ctx context.Context, dir string) ([]Entry, error) {
	var entries []Entry
	err := c.ListFunc(ctx, dir, func(e Entry) error {
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return entries, nil
}

// ListFunc lists the directory dir like List, calling fn for each entry as
// the listing streams in. The listing is bounded: more than
// Config.MaxListEntries entries, more than Config.MaxListBytes bytes or a
// line longer than 64 KiB abort it with an error wrapping ErrListTooLarge;
// no byte for Config.StallTimeout fails it with ErrStalled. An error from fn
// aborts the listing too and is returned wrapped. After an abort the session
// stays usable when the server answers ABOR properly, and is broken
// otherwise.
func (c *Client) ListFunc(ctx context.Context, dir string, fn func(Entry) error) error {
	_, mlsd := c.features["MLST"]
	verb := "LIST"
	if mlsd {
		verb = "MLSD"
	}
	now := time.Now()
	return c.readLines(ctx, verb, dir, func(line string) (func() error, error) {
		var (
			e   Entry
			ok  bool
			err error
		)
		if mlsd {
			e, ok, err = parseMLSx(line)
		} else {
			e, ok, err = parseLIST(line, now)
		}
		if err != nil || !ok || e.Name == "." || e.Name == ".." {
			return nil, err
		}
		return func() error { return fn(e) }, nil
	})
}

// readLines runs a command whose output comes over a data connection as
// lines, calling parse for each line (without CR LF). For a line that is an
// entry parse returns a function delivering it, called if the entry is within
// MaxListEntries. The listing is bounded
// (see ListFunc); it is read through a LimitedReader, so at most
// MaxListBytes+1 bytes are ever read from the data connection.
func (c *Client) readLines(ctx context.Context, verb, arg string, parse func(line string) (func() error, error)) error {
	t, err := c.startData(ctx, verb, arg, 0)
	if err != nil {
		return err
	}
	lr := &io.LimitedReader{R: &reader{t}, N: c.cfg.MaxListBytes + 1}
	br := bufio.NewReaderSize(lr, maxListLine)
	entries := 0
	var lerr error
	for lerr == nil {
		line, err := br.ReadSlice('\n')
		switch {
		case lr.N == 0:
			lerr = fmt.Errorf("ftp %s: %w: more than %d bytes from %s (MaxListBytes)",
				t.what, ErrListTooLarge, c.cfg.MaxListBytes, c.cfg.Addr)
			continue
		case err == bufio.ErrBufferFull:
			lerr = fmt.Errorf("ftp %s: %w: a line longer than %d bytes from %s: %q",
				t.what, ErrListTooLarge, maxListLine, c.cfg.Addr, excerpt(string(line), excerptLen))
			continue
		case err != nil && err != io.EOF:
			lerr = err // already "ftp VERB arg: ..."
			continue
		}
		if len(line) > 0 {
			deliver, perr := parse(strings.TrimRight(string(line), "\r\n"))
			if perr == nil && deliver != nil {
				if entries++; entries > c.cfg.MaxListEntries {
					lerr = fmt.Errorf("ftp %s: %w: more than %d entries from %s (MaxListEntries)",
						t.what, ErrListTooLarge, c.cfg.MaxListEntries, c.cfg.Addr)
					continue
				}
				perr = deliver()
			}
			if perr != nil {
				lerr = fmt.Errorf("ftp %s: %w", t.what, perr)
				continue
			}
		}
		if err == io.EOF {
			break
		}
	}
	if lerr != nil {
		// Abort; whether the session survives is recorded in the client.
		_ = t.finish(false)
		return lerr
	}
	return t.finish(true)
}

// NameList lists the names at p (NLST), a directory or a file. It is the
// cheapest command that opens a data connection, which is why connectivity
// probes use it. It is bounded like ListFunc.
func (c *Client) NameList(ctx context.Context, p string) ([]string, error) {
	var names []string
	err := c.readLines(ctx, "NLST", p, func(line string) (func() error, error) {
		if line == "" {
			return nil, nil
		}
		return func() error { names = append(names, line); return nil }, nil
	})
	if err != nil {
		return nil, err
	}
	return names, nil
}

// PASVAddress sends PASV and returns the address the server announces,
// without connecting to it (the server drops the listener at the next
// data command). Servers behind NAT often announce their private address;
// compare it with RemoteAddr. IPv6 control connections have no PASV.
func (c *Client) PASVAddress(ctx context.Context) (netip.AddrPort, error) {
	var ap netip.AddrPort
	err := c.do(ctx, "PASV", func() error {
		if c.remoteIP.Is6() {
			return errors.New("PASV is IPv4 only (this control connection is IPv6)")
		}
		r, err := c.expect("PASV", 227)
		if err != nil {
			return err
		}
		ip, port, err := parsePASV(r.msg())
		if err != nil {
			return err
		}
		ap = netip.AddrPortFrom(ip, uint16(port))
		return nil
	})
	return ap, err
}

// mlstEntry is the entry of MLST's 250 reply for p.
func mlstEntry(p string, r *reply) (Entry, error) {
	for _, l := range r.Lines[1:] {
		if !strings.HasPrefix(l, " ") {
			continue
		}
		e, ok, err := parseMLSx(l[1:])
		if err != nil {
			return Entry{}, fmt.Errorf("ftp MLST %s: %w", p, err)
		}
		if ok {
			e.Name = path.Base(p)
			return e, nil
		}
	}
	return Entry{}, fmt.Errorf("ftp MLST %s: no entry in reply %q", p, truncate(r.msg(), 120))
}
