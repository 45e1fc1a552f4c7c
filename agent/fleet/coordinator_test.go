package fleet

import (
	"strings"
	"testing"

	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// TestStartRefuses: bad requests are refused before anything is stored, naming the field.
func TestStartRefuses(t *testing.T) {
	c, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ok := func() *ferryv1.StartFleetJobRequest {
		return &ferryv1.StartFleetJobRequest{
			Kind: ferryv1.FleetJobKind_FLEET_JOB_KIND_COPY, Source: &ferryv1.FleetAgent{Name: "n0", Address: "127.0.0.1:1"},
			SourcePath: "a.bin", DestinationPath: "in/",
			Targets: []*ferryv1.FleetAgent{{Name: "n1", Address: "127.0.0.1:2"}, {Name: "n2", Address: "127.0.0.1:3"}},
		}
	}
	for _, tc := range []struct {
		field string
		mod   func(*ferryv1.StartFleetJobRequest)
	}{
		{"kind:", func(r *ferryv1.StartFleetJobRequest) { r.Kind = 0 }},
		{"source.name:", func(r *ferryv1.StartFleetJobRequest) { r.Source.Name = "bad name" }},
		{"source.address:", func(r *ferryv1.StartFleetJobRequest) { r.Source.Address = "" }},
		{"source_path:", func(r *ferryv1.StartFleetJobRequest) { r.SourcePath = "../x" }},
		{"source_path:", func(r *ferryv1.StartFleetJobRequest) { r.SourcePath = "ftp://h/x" }},
		{"destination_path:", func(r *ferryv1.StartFleetJobRequest) { r.DestinationPath = "a/../../b" }},
		{"targets:", func(r *ferryv1.StartFleetJobRequest) { r.Targets = nil }},
		{"targets[1].name:", func(r *ferryv1.StartFleetJobRequest) { r.Targets[1].Name = "n1" }},
		{"targets[0].name:", func(r *ferryv1.StartFleetJobRequest) { r.Targets[0].Name = "n0" }},
		{"fanout:", func(r *ferryv1.StartFleetJobRequest) { r.Fanout = -1 }},
		{"concurrency:", func(r *ferryv1.StartFleetJobRequest) { r.Concurrency = 100000 }},
		{"canary:", func(r *ferryv1.StartFleetJobRequest) { r.Canary = 3 }},
		{"strategy:", func(r *ferryv1.StartFleetJobRequest) { r.Strategy = 9 }},
	} {
		r := ok()
		tc.mod(r)
		_, err := c.Start(r, "test")
		var inv *InvalidError
		if err == nil || !strings.HasPrefix(err.Error(), tc.field) {
			t.Errorf("%s: got %v", tc.field, err)
		} else if !errorsAs(err, &inv) {
			t.Errorf("%s: %T is no InvalidError", tc.field, err)
		}
	}
	if n := len(c.List()); n != 0 {
		t.Errorf("%d jobs after refused requests", n)
	}
}

func errorsAs(err error, target **InvalidError) bool {
	e, ok := err.(*InvalidError)
	if ok {
		*target = e
	}
	return ok
}
