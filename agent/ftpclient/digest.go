package ftpclient

import (
	"encoding/hex"
	"strconv"
	"strings"
)

// Digests in transfer replies: an agent that takes "OPTS XDIGEST ON" (sent in the pipelined
// login, so it costs nothing) ends the 226 of a RETR sent to the end of a file, or of a STOR
// that wrote a whole file, with "; SHA-256 0-<size> <hex>": the digest its HASH would answer
// right after. HashSize of that path and size then returns it without a round trip. A size
// other than the one expected (the first of a file's parallel upload ranges ends before other
// sessions wrote the rest) or any other reply, server or transfer leaves HashSize asking the
// server as before.

const digestOpt = "XDIGEST ON"

// replyDigest returns the file size and SHA-256 a 226 reply ends with
// ("...; SHA-256 0-<size> <64 hex digits>").
func replyDigest(r *reply) (size int64, sum string, ok bool) {
	if r == nil || r.Code != 226 || len(r.Lines) == 0 {
		return 0, "", false
	}
	_, after, ok := strings.Cut(r.Lines[len(r.Lines)-1], "; SHA-256 0-")
	if !ok {
		return 0, "", false
	}
	f := strings.Fields(after)
	if len(f) != 2 {
		return 0, "", false
	}
	size, err := strconv.ParseInt(f[0], 10, 64)
	if b, herr := hex.DecodeString(f[1]); err != nil || size < 0 || herr != nil || len(b) != 32 {
		return 0, "", false
	}
	return size, strings.ToLower(f[1]), true
}

// takeTransferDigest returns, once, the digest the last transfer's 226 carried if that transfer
// moved path and the file had size bytes. Like every command, it runs on the session's one
// user goroutine.
func (c *Client) takeTransferDigest(path string, size int64) (string, bool) {
	x := c.xferSum
	c.xferSum = transferSum{}
	if x.sum == "" || x.path != path || x.size != size {
		return "", false
	}
	return x.sum, true
}

// transferSum is the digest a transfer's 226 carried.
type transferSum struct {
	path, sum string
	size      int64
}
