package server_test

import (
	"context"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/ferry-dev/ferry/agent/daemon"
	"github.com/ferry-dev/ferry/agent/transfer"
	"github.com/ferry-dev/ferry/internal/testagent"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// The request fuzzers call a real in-process agent over gRPC. A request that passes validation
// starts a real transfer, so remote endpoints may only name the sink: a loopback listener that
// closes every connection. "SINK" in any fuzzed string stands for its address; a request naming
// any other remote is not sent. Everything the agent dials is thus that one local socket.

// fuzzMark starts every password the fuzzers put in a request: no other text holds it, so
// finding it in an error or a response is a leak.
const fuzzMark = "Qz7pWsecret"

// fieldMsg is how an InvalidArgument message starts: the request field it is about.
var fieldMsg = regexp.MustCompile(`^[a-z][a-z_]*(\[[0-9]+\])?: `)

type fuzzAgent struct {
	a    *testagent.Agent
	sink string // host:port
}

func startFuzzAgent(f *testing.F) *fuzzAgent {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	a := testagent.Start(f, func(c *daemon.Config) {
		c.Retries = -1           // a failed attempt ends the job
		c.History = time.Second  // finished jobs do not pile up
		c.GrantTTL = time.Second // nor do credentials
		c.Logger = slog.New(slog.DiscardHandler)
		c.ProbeTimeout = 200 * time.Millisecond
	})
	return &fuzzAgent{a: a, sink: ln.Addr().String()}
}

// endpoint substitutes the sink and reports whether the text may be sent: it is not a remote
// endpoint, or its remote is the sink.
func (fa *fuzzAgent) endpoint(s string) (string, bool) {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "SINK", fa.sink), "?")
	e, err := transfer.ParseEndpoint("x", s)
	return s, err != nil || e.Kind == transfer.KindLocal || e.Host == fa.sink
}

// withSecret makes s a URL with a password starting with fuzzMark when on: "ftp://u:MARKpass@s".
func withSecret(on bool, scheme, pass, s string) string {
	if !on {
		return s
	}
	return scheme + "://u:" + fuzzMark + pass + "@" + s
}

// check asserts what every answer must satisfy: no transport failure or hang, a code a bad
// request may get, an InvalidArgument message that starts with the field name, and no trace of
// the password (when one was sent) in the error or the response.
func check(t *testing.T, what string, resp proto.Message, err error, secret bool) {
	t.Helper()
	text := ""
	if err != nil {
		st := status.Convert(err)
		switch st.Code() {
		case codes.InvalidArgument:
			if !fieldMsg.MatchString(st.Message()) {
				t.Fatalf("%s: InvalidArgument %q does not start with a field name", what, st.Message())
			}
		case codes.FailedPrecondition: // conflict: the destination is being written
		case codes.NotFound: // a local source that does not exist (exit 4 in ferryctl, as every not-found)
			if !fieldMsg.MatchString(st.Message()) {
				t.Fatalf("%s: NotFound %q does not start with a field name", what, st.Message())
			}
		default:
			t.Fatalf("%s: %v", what, err)
		}
		text = st.Message()
	} else {
		text = prototext.Format(resp)
	}
	if secret && strings.Contains(text, fuzzMark[:6]) {
		t.Fatalf("%s: the password shows in the answer: %s", what, text)
	}
}

func fuzzCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// FuzzStartTransfer sends StartTransfer with arbitrary source, destination, mode and request
// id; bit 0 and 1 of secret put a password in the source or destination URL.
func FuzzStartTransfer(f *testing.F) {
	f.Add("in/a.bin", "ftp://SINK/x", uint8(0), "pw", int32(1), "", false)
	f.Add(".", "ftp://SINK/x/", uint8(0), "pw", int32(0), "req-1", true)
	f.Add("ftp://SINK/x", "in/", uint8(0), "pw", int32(2), "", false)
	f.Add("SINK/x", "in/", uint8(1), "hunter2", int32(3), "", false)
	f.Add("SINK/x", "in/", uint8(1), "p#ss", int32(1), "", false)
	f.Add("in/", "SINK/x", uint8(2), "p/ss", int32(1), "", false)
	f.Add("in/", "agent://SINK/x", uint8(0), "", int32(1), "", false)
	f.Add("../etc/passwd", "ftp://SINK/x", uint8(0), "", int32(1), "", false)
	f.Add("a", "b", uint8(0), "", int32(99), strings.Repeat("r", 200), false)
	f.Add("", "", uint8(3), "", int32(-1), "", false)
	f.Add("ftp://SINK/a", "ftp://SINK/b", uint8(0), "", int32(1), "", false)
	f.Add("in/\x00", "ftp://h:0/x", uint8(0), "", int32(1), "", false)
	fa := startFuzzAgent(f)
	f.Fuzz(func(t *testing.T, src, dst string, secret uint8, pass string, mode int32, reqID string, restart bool) {
		src = withSecret(secret&1 != 0, "ftp", pass, src)
		dst = withSecret(secret&2 != 0, "ftp", pass, dst)
		var ok1, ok2 bool
		src, ok1 = fa.endpoint(src)
		dst, ok2 = fa.endpoint(dst)
		reqID = strings.ToValidUTF8(reqID, "?")
		if !ok1 || !ok2 {
			return
		}
		hasSecret := secret&3 != 0 && strings.Count(src+dst+reqID, fuzzMark[:6]) == 1
		resp, err := fa.a.Client.StartTransfer(fuzzCtx(t), &ferryv1.StartTransferRequest{
			Source: src, Destination: dst, Mode: ferryv1.TransferMode(mode), RequestId: reqID, Restart: restart,
		})
		check(t, "StartTransfer("+strconv.Quote(src)+", "+strconv.Quote(dst)+")", resp, err, hasSecret)
	})
}

// FuzzGrantAccess sends GrantAccess with an arbitrary path and access; with secret the path is
// a URL holding a password.
func FuzzGrantAccess(f *testing.F) {
	f.Add("in/big.bin", int32(1), false, "")
	f.Add(".", int32(2), false, "")
	f.Add("../x", int32(1), false, "")
	f.Add("/abs/x", int32(2), false, "")
	f.Add("", int32(1), false, "")
	f.Add("x", int32(0), false, "")
	f.Add("x", int32(7), false, "")
	f.Add("SINK/x", int32(1), true, "p#ss")
	f.Add("h/x", int32(1), true, "pw")
	f.Add("a\x00b", int32(1), false, "")
	fa := startFuzzAgent(f)
	f.Fuzz(func(t *testing.T, p string, access int32, secret bool, pass string) {
		p = strings.ToValidUTF8(withSecret(secret, "ftp", pass, p), "?")
		hasSecret := secret && strings.Count(p, fuzzMark[:6]) == 1
		resp, err := fa.a.Client.GrantAccess(fuzzCtx(t), &ferryv1.GrantAccessRequest{Path: p, Access: ferryv1.Access(access)})
		check(t, "GrantAccess("+strconv.Quote(p)+")", resp, err, hasSecret)
		if err == nil {
			if access != 1 && access != 2 {
				t.Fatalf("GrantAccess(%q) granted access %d", p, access)
			}
			if resp.GetUser() == "" || resp.GetPassword() == "" || resp.GetFtpPort() < 1 || !resp.GetExpiresAt().AsTime().After(time.Now()) {
				t.Fatalf("GrantAccess(%q) = %v", p, resp)
			}
		}
	})
}

// FuzzReverseTransfer sends ReverseTransfer with arbitrary fields; the password always starts
// with fuzzMark. A port in 1-65535 is replaced by the sink's, since it is where the agent dials.
func FuzzReverseTransfer(f *testing.F) {
	f.Add("in/x", int32(1), int32(2121), "u", "pw", "/x", int32(1), "")
	f.Add(".", int32(2), int32(2121), "u", "p#ss", "x/", int32(2), "req")
	f.Add("../x", int32(1), int32(2121), "u", "pw", "/x", int32(1), "")
	f.Add("in/x", int32(0), int32(2121), "u", "pw", "/x", int32(1), "")
	f.Add("in/x", int32(1), int32(0), "u", "pw", "/x", int32(1), "")
	f.Add("in/x", int32(1), int32(70000), "u", "pw", "/x", int32(1), "")
	f.Add("in/x", int32(1), int32(21), "", "pw", "/x", int32(1), "")
	f.Add("in/x", int32(1), int32(21), "u", "pw", "", int32(1), "")
	f.Add("ftp://h/x", int32(1), int32(21), "u:x@y", "p@w", "a/../../b", int32(9), "")
	f.Add("in/x", int32(1), int32(21), "u\r\nDELE x", "pw\r\n", "/x\x00", int32(1), "")
	fa := startFuzzAgent(f)
	_, sinkPort, _ := net.SplitHostPort(fa.sink)
	sp, _ := strconv.Atoi(sinkPort)
	f.Fuzz(func(t *testing.T, p string, dir, port int32, user, pass, remote string, mode int32, reqID string) {
		if port >= 1 && port <= 65535 {
			port = int32(sp)
		}
		pass = fuzzMark + strings.ToValidUTF8(pass, "?")
		req := &ferryv1.ReverseTransferRequest{
			Path: strings.ToValidUTF8(p, "?"), Direction: ferryv1.Direction(dir), FtpPort: port,
			User: strings.ToValidUTF8(user, "?"), Password: pass, RemotePath: strings.ToValidUTF8(remote, "?"),
			Mode: ferryv1.TransferMode(mode), RequestId: strings.ToValidUTF8(reqID, "?"),
		}
		hasSecret := strings.Count(req.Path+req.User+pass+req.RemotePath+req.RequestId, fuzzMark[:6]) == 1
		resp, err := fa.a.Client.ReverseTransfer(fuzzCtx(t), req)
		check(t, "ReverseTransfer("+prototext.Format(req)+")", resp, err, hasSecret)
	})
}
