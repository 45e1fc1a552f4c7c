package transfer

import (
	"context"
	"errors"
	"testing"
)

type recObs struct {
	name string
	log  *[]string
	veto error
}

func (r recObs) Observe(e Event) { *r.log = append(*r.log, r.name+":"+e.Kind.String()) }
func (r recObs) BeforeStart(context.Context, Snapshot) error {
	*r.log = append(*r.log, r.name+":start?")
	return r.veto
}
func (r recObs) BeforePublish(context.Context, Snapshot, string) error {
	*r.log = append(*r.log, r.name+":publish?")
	return r.veto
}

type plainObs struct{ log *[]string }

func (p plainObs) Observe(e Event) { *p.log = append(*p.log, "plain:"+e.Kind.String()) }

func TestObserversFanOutAndFirstVetoWins(t *testing.T) {
	var log []string
	deny := errors.New("scan found a virus")
	all := Observers{plainObs{&log}, nil, recObs{"a", &log, nil}, recObs{"b", &log, deny}, recObs{"c", &log, nil}}
	all.Observe(Event{Kind: EventStarted})
	if err := all.BeforeStart(context.Background(), Snapshot{}); !errors.Is(err, deny) {
		t.Fatalf("BeforeStart = %v, want the second gate's veto", err)
	}
	if err := all.BeforePublish(context.Background(), Snapshot{}, "x"); !errors.Is(err, deny) {
		t.Fatalf("BeforePublish = %v, want the second gate's veto", err)
	}
	want := []string{"plain:started", "a:started", "b:started", "c:started", "a:start?", "b:start?", "a:publish?", "b:publish?"}
	if len(log) != len(want) {
		t.Fatalf("log = %v, want %v", log, want)
	}
	for i := range want {
		if log[i] != want[i] {
			t.Fatalf("log = %v, want %v", log, want)
		}
	}
}
