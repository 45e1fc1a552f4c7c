package plugins

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"
)

type fakeAuth struct{ gotDeadline chan time.Time }

func (f fakeAuth) Authenticate(ctx context.Context, r AuthRequest) (AuthResponse, error) {
	if dl, ok := ctx.Deadline(); ok {
		f.gotDeadline <- dl
	} else {
		f.gotDeadline <- time.Time{}
	}
	switch {
	case r.User == "alice" && r.Password == "pw" && r.TLS && r.Remote == "192.0.2.1:1234":
		return Allow("/users/alice", true), nil
	case r.User == "alice":
		return Deny("wrong password"), nil
	case r.User == "slow":
		<-ctx.Done()
		return AuthResponse{}, ctx.Err()
	}
	return Unknown("no such user"), nil
}

type recHook struct{ got chan Event }

func (h recHook) Notify(_ context.Context, e Event) error { h.got <- e; return nil }
func (h recHook) Check(_ context.Context, e Event) (Decision, error) {
	if e.Path == "bad.exe" {
		return Decision{Reason: "no executables"}, nil
	}
	if e.Path == "err" {
		return Decision{}, errors.New("scanner broken")
	}
	return Decision{Allow: true}, nil
}

func connect(t *testing.T, impl Impl) *Client {
	t.Helper()
	client, _ := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{PluginName: &Plugin{Impl: impl}})
	t.Cleanup(func() { client.Close() })
	raw, err := client.Dispense(PluginName)
	if err != nil {
		t.Fatal(err)
	}
	return raw.(*Client)
}

func TestAuthShim(t *testing.T) {
	fa := fakeAuth{gotDeadline: make(chan time.Time, 10)}
	c := connect(t, Impl{Name: "fa", Version: "1", Auth: fa})
	info, err := c.Info(context.Background())
	if err != nil || info.Name != "fa" || !info.Has("auth") || info.Has("hook") {
		t.Fatalf("Info = %+v, %v", info, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	want, _ := ctx.Deadline()
	r, err := c.Auth().Authenticate(ctx, AuthRequest{User: "alice", Password: "pw", Remote: "192.0.2.1:1234", TLS: true})
	if err != nil || r.Result != AuthAllow || r.Home != "/users/alice" || !r.ReadOnly {
		t.Fatalf("allow: %+v, %v", r, err)
	}
	if got := <-fa.gotDeadline; got.IsZero() || got.Sub(want).Abs() > time.Second {
		t.Errorf("plugin saw deadline %v, caller set %v: the caller's context is not passed through", got, want)
	}
	if r, _ := c.Auth().Authenticate(ctx, AuthRequest{User: "alice", Password: "x"}); r.Result != AuthDeny || r.Reason != "wrong password" {
		t.Errorf("deny: %+v", r)
	}
	<-fa.gotDeadline
	if r, _ := c.Auth().Authenticate(ctx, AuthRequest{User: "bob"}); r.Result != AuthUnknownUser {
		t.Errorf("unknown: %+v", r)
	}
	<-fa.gotDeadline
	short, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	start := time.Now()
	if _, err := c.Auth().Authenticate(short, AuthRequest{User: "slow"}); err == nil {
		t.Error("slow plugin: no error past the deadline")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("slow plugin: returned after %v, deadline was 100ms", d)
	}
}

func TestHookShim(t *testing.T) {
	h := recHook{got: make(chan Event, 10)}
	c := connect(t, Impl{Name: "h", Hook: h})
	now := time.Now().UTC().Truncate(time.Microsecond)
	e := Event{Kind: KindSucceeded, Time: now, Transfer: &Transfer{ID: "t1", Source: "a", Destination: "b",
		Direction: "download", State: "succeeded", BytesDone: 5, BytesTotal: 5, Attempt: 2, SHA256: "ab"}}
	if err := c.Hook().Notify(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	got := <-h.got
	if got.Kind != KindSucceeded || !got.Time.Equal(now) || *got.Transfer != *e.Transfer {
		t.Errorf("Notify: got %+v %+v, want %+v %+v", got, got.Transfer, e, e.Transfer)
	}
	fe := Event{Kind: KindFTPRenamed, File: &FileEvent{User: "u", Path: "/a", To: "/b", TLS: true}}
	if err := c.Hook().Notify(context.Background(), fe); err != nil {
		t.Fatal(err)
	}
	if got := <-h.got; got.Kind != KindFTPRenamed || *got.File != *fe.File {
		t.Errorf("file event: %+v", got)
	}
	d, err := c.Hook().Check(context.Background(), Event{Kind: KindBeforePublish, Path: "bad.exe"})
	if err != nil || d.Allow || d.Reason != "no executables" {
		t.Errorf("deny: %+v %v", d, err)
	}
	if d, err := c.Hook().Check(context.Background(), Event{Kind: KindBeforePublish, Path: "ok"}); err != nil || !d.Allow {
		t.Errorf("allow: %+v %v", d, err)
	}
	if _, err := c.Hook().Check(context.Background(), Event{Kind: KindBeforePublish, Path: "err"}); err == nil {
		t.Error("a failing check returned no error")
	}
}
