package buggify

import (
	"errors"
	"testing"

	"github.com/multiraft/multiraft/core/rng"
)

func TestNilDoesNothing(t *testing.T) {
	var b *B
	for p := Point(0); p < NumPoints; p++ {
		if b.Fire(p) {
			t.Fatalf("a nil B fired %s", p)
		}
	}
	b.Reach(LeaderChangeDuringSplit)
	if b.Counting() || b.Delay(1, 5) != 0 || b.Intn(3) != 0 {
		t.Fatal("a nil B counts or draws")
	}
	var run *Run
	if run.Node(1) != nil {
		t.Fatal("a nil run gave a non-nil B")
	}
}

func TestOffDrawsNothing(t *testing.T) {
	r := rng.New(1)
	want := rng.New(1).Uint64()
	run := NewRun(r, Options{EnableProb: -1}, nil)
	b := run.Node(1)
	for i := 0; i < 100; i++ {
		for p := Point(0); p < NumPoints; p++ {
			if b.Fire(p) {
				t.Fatalf("%s fired with every hook off", p)
			}
		}
	}
	if len(run.Enabled()) != 0 {
		t.Fatalf("enabled %v", run.Enabled())
	}
	if got := r.Uint64(); got != want {
		t.Fatal("a run with every hook off drew from its stream")
	}
	b.Reach(SessionExpiredAnswered)
	b.Reach(SessionExpiredAnswered)
	if run.Reached(SessionExpiredAnswered) != 2 {
		t.Fatal("coverage not counted with hooks off")
	}
}

func TestForceStopAndCounts(t *testing.T) {
	var notes []string
	run := NewRun(rng.New(7), Options{Force: []Point{SplitApplyCrash}}, func(s string) { notes = append(notes, s) })
	if en := run.Enabled(); len(en) != 1 || en[0] != SplitApplyCrash {
		t.Fatalf("enabled %v, want only %s", en, SplitApplyCrash)
	}
	b := run.Node(3)
	fired := 0
	for i := 0; i < 1000; i++ {
		if b.Fire(SplitProposeDrop) {
			t.Fatal("a hook not forced fired")
		}
		if b.Fire(SplitApplyCrash) {
			fired++
		}
	}
	if run.Passes(SplitApplyCrash) != 1000 || run.Fired(SplitApplyCrash) != uint64(fired) || len(notes) != fired {
		t.Fatalf("passes %d fired %d (counted %d, notes %d)", run.Passes(SplitApplyCrash), run.Fired(SplitApplyCrash), fired, len(notes))
	}
	if p := SplitApplyCrash.FireProb(); fired < int(1000*p/2) || fired > int(1000*p*2) {
		t.Fatalf("fired %d of 1000 at probability %g", fired, p)
	}
	run.Stop()
	for i := 0; i < 1000; i++ {
		if b.Fire(SplitApplyCrash) {
			t.Fatal("fired after Stop")
		}
	}
}

func TestEnableIsPerRunAndDeterministic(t *testing.T) {
	a := NewRun(rng.New(42), Options{}, nil).Enabled()
	b := NewRun(rng.New(42), Options{}, nil).Enabled()
	if len(a) != len(b) {
		t.Fatalf("same stream, different hooks: %v vs %v", a, b)
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same stream, different hooks: %v vs %v", a, b)
		}
	}
	total := 0
	for seed := uint64(0); seed < 200; seed++ {
		total += len(NewRun(rng.New(seed), Options{}, nil).Enabled())
	}
	mean := float64(total) / 200 / float64(NumPoints)
	if mean < 0.2 || mean > 0.3 {
		t.Fatalf("hooks enabled %.2f of the time, want about %g", mean, DefaultEnableProb)
	}
}

func TestNamesAndCrash(t *testing.T) {
	seen := map[string]bool{}
	for p := Point(0); p < NumPoints; p++ {
		if p.String() == "" || seen[p.String()] || p.FireProb() <= 0 || p.FireProb() >= 1 {
			t.Fatalf("hook %d: name %q, fire %g", p, p.String(), p.FireProb())
		}
		seen[p.String()] = true
		if q, ok := PointByName(p.String()); !ok || q != p {
			t.Fatalf("PointByName(%q) = %v, %v", p, q, ok)
		}
	}
	for e := Event(0); e < NumEvents; e++ {
		if e.String() == "" || seen[e.String()] {
			t.Fatalf("event %d: name %q", e, e.String())
		}
		seen[e.String()] = true
		if f, ok := EventByName(e.String()); !ok || f != e {
			t.Fatalf("EventByName(%q) = %v, %v", e, f, ok)
		}
	}
	if err := Crash(SyncCrashBefore); !errors.Is(err, ErrCrash) {
		t.Fatalf("Crash gives %v, not an ErrCrash", err)
	}
}
