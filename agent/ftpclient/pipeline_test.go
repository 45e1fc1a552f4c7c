package ftpclient

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// seenCommands drains a scripted server's Seen channel.
func seenCommands(s *scriptedServer) []string {
	var seen []string
	for len(s.Seen) > 0 {
		seen = append(seen, <-s.Seen)
	}
	return seen
}

// TestPipelinedLoginOrder: toward a greeting with PipelineMarker, the whole login is sent before
// any of its replies is read; the replies, read in order, log in and give the features.
func TestPipelinedLoginOrder(t *testing.T) {
	replies := loginReplies()
	replies["FEAT"] = []string{"211-Features:", " UTF8", " MLST size*;", "211 End"}
	replies["OPTS"] = []string{"200 UTF8 on"}
	srv := startScripted(t, &scriptedServer{Greeting: []string{"220 scripted " + PipelineMarker}, Replies: replies})
	c := dial(t, Config{Addr: srv.Addr, User: "u", Password: "p"})
	if !c.Pipelined() {
		t.Fatal("Pipelined() = false after a greeting with the marker")
	}
	if f := c.Features(); f["MLST"] != "size*;" || len(f) != 2 {
		t.Fatalf("Features = %v", f)
	}
	want := []string{"USER u", "PASS p", "TYPE I", "FEAT", "OPTS UTF8 ON", "OPTS XDIGEST ON"}
	if got := seenCommands(srv); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("commands = %q, want %q", got, want)
	}
}

// TestPipelinedLoginRefused: a 530 to the pipelined PASS fails Dial at once with the error of the
// sequential login, even though the server goes on answering (or not) the commands behind it,
// and without the password in the error.
func TestPipelinedLoginRefused(t *testing.T) {
	replies := loginReplies()
	replies["PASS"] = []string{"530 Login incorrect."}
	replies["TYPE"] = nil // no reply: Dial must not wait for it
	srv := startScripted(t, &scriptedServer{Greeting: []string{"220 scripted " + PipelineMarker}, Replies: replies})
	seq := startScripted(t, &scriptedServer{Replies: replies})
	for _, s := range []*scriptedServer{srv, seq} {
		start := time.Now()
		_, err := Dial(testCtx(t, 10*time.Second), Config{Addr: s.Addr, User: "u", Password: "secret-pw", ReplyTimeout: 5 * time.Second})
		if err == nil {
			t.Fatal("Dial succeeded after 530")
		}
		want := "ftp dial " + s.Addr + `: login as "u" failed: ftp 530: Login incorrect.`
		if err.Error() != want {
			t.Errorf("error = %q, want %q", err, want)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("refused login took %v", d)
		}
		wantReplyCode(t, err, 530)
	}
	// The pipeline did go out whole: TYPE I follows the refused PASS (the server may read it
	// after Dial returned).
	var got []string
	for deadline := time.Now().Add(5 * time.Second); len(got) < 3 && time.Now().Before(deadline); {
		select {
		case l := <-srv.Seen:
			got = append(got, l)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if len(got) < 3 || got[2] != "TYPE I" {
		t.Errorf("commands = %q, want the login pipelined", got)
	}
	if got := seenCommands(seq); len(got) != 2 {
		t.Errorf("sequential commands = %q, want USER and PASS only", got)
	}
}

// TestPipelinedLoginNoReply: a server that announces pipelining and then stops answering at PASS
// fails Dial after ReplyTimeout. (One that skips PASS's reply only and answers TYPE I fails too:
// TYPE's 200 is read as PASS's reply, which is not 230.)
func TestPipelinedLoginNoReply(t *testing.T) {
	replies := loginReplies()
	for _, v := range []string{"PASS", "TYPE", "FEAT", "OPTS"} {
		replies[v] = nil
	}
	srv := startScripted(t, &scriptedServer{Greeting: []string{"220 scripted " + PipelineMarker}, Replies: replies})
	start := time.Now()
	_, err := Dial(testCtx(t, 10*time.Second), Config{Addr: srv.Addr, User: "u", Password: "secret-pw", ReplyTimeout: 300 * time.Millisecond})
	if !errors.Is(err, ErrReplyTimeout) || !strings.Contains(err.Error(), `login as "u": `) {
		t.Fatalf("Dial = %v, want a reply timeout in the login", err)
	}
	if strings.Contains(err.Error(), "secret-pw") {
		t.Fatalf("the password leaked into %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %v", d)
	}
}

// TestEagerTransferRESTRefused: toward a server that announced pipelining, EPSV, REST and RETR
// go in one flight; a refused REST (the server now sends from offset 0) fails the transfer
// and the session at once, naming REST, and no data connection is read.
func TestEagerTransferRESTRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	replies := loginReplies()
	replies["EPSV"] = []string{fmt.Sprintf("229 Entering Extended Passive Mode (|||%d|)", ln.Addr().(*net.TCPAddr).Port)}
	replies["REST"] = []string{"501 Bad offset."}
	replies["RETR"] = nil
	srv := startScripted(t, &scriptedServer{Greeting: []string{"220 scripted " + PipelineMarker}, Replies: replies})
	c := dial(t, Config{Addr: srv.Addr, User: "u", Password: "p", ReplyTimeout: 5 * time.Second})
	seenCommands(srv)
	start := time.Now()
	_, err = c.Retr(testCtx(t, 10*time.Second), "/f", 100)
	if err == nil || !strings.Contains(err.Error(), "REST 100") || !strings.Contains(err.Error(), "501") {
		t.Fatalf("Retr with a refused REST = %v, want an error naming REST and 501", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
	if _, err := c.Retr(testCtx(t, 5*time.Second), "/f", 0); err == nil {
		t.Error("the session was still used after the server started RETR from 0")
	}
	want := []string{"EPSV", "REST 100", "RETR /f"}
	var got []string
	for deadline := time.Now().Add(5 * time.Second); len(got) < len(want) && time.Now().Before(deadline); {
		select {
		case l := <-srv.Seen:
			got = append(got, l)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("commands = %q, want %q", got, want)
	}
}
