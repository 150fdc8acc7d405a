package sim

import (
	"strings"
	"testing"
	"time"

	"github.com/multiraft/multiraft/checker"
	"github.com/multiraft/multiraft/core/pb"
)

// runProbed runs cfg with the probe on and returns the world, checked.
func runProbed(cfg Config, seed uint64) *World {
	runLock.Lock()
	defer runLock.Unlock()
	cfg.Probe = true
	w := newWorld(cfg.Resolve(seed), seed, nil)
	w.simulate()
	w.check(stopwatch(nil))
	return w
}

// Every store refuses the probe's invalid requests as invalid, and the
// refused writes of workload keys join the history as failed.
func TestProbeInvalidInputIsRefused(t *testing.T) {
	cfg := testConfig("badinput")
	cfg.Duration = 10 * time.Second
	w := runProbed(cfg, 1)
	if len(w.violations) > 0 {
		t.Fatalf("violations: %v", w.violations)
	}
	p := w.probe
	if p.invalidSent < 9*(1+badPerTick) {
		t.Fatalf("%d invalid requests sent", p.invalidSent)
	}
	if p.invalidRefused < p.invalidSent*9/10 {
		t.Errorf("%d of %d invalid requests refused", p.invalidRefused, p.invalidSent)
	}
	if p.invalidSent/(1+badPerTick)*badPerTick < len(badKinds) {
		t.Errorf("%d invalid requests: not every kind was sent", p.invalidSent)
	}
	big := 0
	for _, op := range p.history {
		if op.Outcome == checker.OutcomeFailed && op.Kind == checker.OpPut && len(op.Value) == p.maxValue+1 {
			big++
		}
	}
	if big < 5 {
		t.Errorf("%d refused oversized puts in the history", big)
	}
}

// A store that takes what the probe sends as invalid is caught: the stores
// keep their limits (8 KiB keys, 8 MiB values), and the probe is told they
// are 8 and 100 bytes, so its requests over those reach the stores as a
// store without the size check would see them.
func TestProbeCatchesAStoreThatTakesInvalidInput(t *testing.T) {
	cfg := testConfig("badinput-taken")
	cfg.Duration = 5 * time.Second
	cfg.Faults = func(p *Planner) {
		p.At(0, "lower the probe's limits", func(w *World) { w.probe.maxKey, w.probe.maxValue = 8, 100 })
	}
	w := runProbed(cfg, 1)
	all := strings.Join(w.violations, "\n")
	for _, want := range []string{
		"served an invalid request it must refuse (InvalidRequest): put of a value of 101 bytes (limit 100)",
		"applied an invalid write it must refuse: put of a value of 101 bytes (limit 100)",
		"not as invalid (InvalidRequest)", // a follower's NotLeader
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no violation %q in:\n%s", want, all)
		}
	}
}

// The answers to an invalid request, judged.
func TestInvalidAnswers(t *testing.T) {
	w := newWorld(testConfig("answers"), 1, nil)
	w.stores = []*storeNode{{w: w, id: 1, gen: 3}}
	p := &probe{w: w, badWrites: map[string]string{"sess": "a bad put"}}
	invalid := &pb.RegionError{InvalidRequest: &pb.InvalidRequest{Reason: "too big"}}
	clockDep := &pb.RegionError{InvalidRequest: &pb.InvalidRequest{Reason: "ahead", ClockDependent: true}}
	notLeader := &pb.RegionError{Message: "not leader", NotLeader: &pb.NotLeader{RegionId: 2}}
	failed := &checker.Op{ClientID: ProbeNode, Kind: checker.OpPut, Key: "a000", Value: "v", Call: 5, Outcome: checker.OutcomeFailed}
	for _, c := range []struct {
		name      string
		e         probeExpect
		err       *pb.RegionError
		violation bool
	}{
		{"served", probeExpect{what: "x", strict: true, gen: 3}, nil, true},
		{"served by a store that knew no regions", probeExpect{what: "x"}, nil, true},
		{"refused as invalid", probeExpect{what: "x", strict: true, gen: 3, failed: failed}, invalid, false},
		{"refused as depending on the clock", probeExpect{what: "x", strict: true, gen: 3}, clockDep, true},
		{"refused as not leader", probeExpect{what: "x", strict: true, gen: 3}, notLeader, true},
		{"not leader, by a store that crashed since", probeExpect{what: "x", strict: true, gen: 2}, notLeader, false},
		{"not found, by a store not bootstrapped", probeExpect{what: "x"}, &pb.RegionError{RegionNotFound: &pb.RegionNotFound{RegionId: 2}}, false},
	} {
		w.violations = nil
		p.invalidAnswer(1, c.e, &pb.KvResponse{RegionError: c.err})
		if got := len(w.violations) > 0; got != c.violation {
			t.Errorf("%s: violation %v, want %v (%v)", c.name, got, c.violation, w.violations)
		}
	}
	if len(p.history) != 1 || p.history[0].Value != "v" || p.history[0].Outcome != checker.OutcomeFailed {
		t.Errorf("history %v: want the refused put, failed", p.history)
	}
	w.violations = nil
	p.writeApplied(1, []byte("other"))
	if len(w.violations) != 0 {
		t.Errorf("a write of another session: %v", w.violations)
	}
	p.writeApplied(1, []byte("sess"))
	if len(w.violations) != 1 || !strings.Contains(w.violations[0], "store 1 applied an invalid write it must refuse: a bad put") {
		t.Errorf("the bad put applied: %v", w.violations)
	}
}

// A store's InvalidRequest to a workload client's request is a violation:
// the workload sends only valid requests, and a failed operation is
// dropped from the history, so a store that refuses valid requests (a cas
// of expected version 0, a value under the limit) would pass every check.
// A refusal that depends on the clock, and other region errors, are not.
func TestValidRequestRefusedAsInvalid(t *testing.T) {
	w := newWorld(testConfig("valid-refused"), 1, nil)
	for _, c := range []struct {
		name      string
		err       *pb.RegionError
		violation bool
	}{
		{"served", nil, false},
		{"invalid", &pb.RegionError{Message: "invalid request: cas: empty key", InvalidRequest: &pb.InvalidRequest{Reason: "cas: empty key"}}, true},
		{"clock dependent", &pb.RegionError{InvalidRequest: &pb.InvalidRequest{Reason: "ahead", ClockDependent: true}}, false},
		{"not leader", &pb.RegionError{NotLeader: &pb.NotLeader{RegionId: 2}}, false},
	} {
		w.violations = nil
		w.checkValidRefused(2, FirstClientNode, &pb.KvResponse{RequestId: 7, RegionError: c.err})
		if got := len(w.violations) > 0; got != c.violation {
			t.Errorf("%s: violation %v, want %v (%v)", c.name, got, c.violation, w.violations)
		}
	}
}

// The probe's valid requests exactly at the limits are sent, and any answer
// but InvalidRequest (or a cas of a version no key reaches that succeeds)
// passes.
func TestAtLimitAnswers(t *testing.T) {
	cfg := testConfig("atlimit")
	cfg.Duration = 5 * time.Second
	w := runProbed(cfg, 1)
	if len(w.violations) > 0 {
		t.Fatalf("violations: %v", w.violations)
	}
	if p := w.probe; p.atLimitSent < 9 || p.atLimitAnswered < p.atLimitSent*8/10 {
		t.Fatalf("%d of %d requests at the limits answered", p.atLimitAnswered, p.atLimitSent)
	}
	p := w.probe
	for _, c := range []struct {
		name      string
		resp      *pb.KvResponse
		violation bool
	}{
		{"served", &pb.KvResponse{Result: &pb.KvResponse_Get{Get: &pb.GetResponse{}}}, false},
		{"cas failed", &pb.KvResponse{Result: &pb.KvResponse_Cas{Cas: &pb.CasResponse{Version: 3}}}, false},
		{"cas succeeded", &pb.KvResponse{Result: &pb.KvResponse_Cas{Cas: &pb.CasResponse{Succeeded: true, Version: 4}}}, true},
		{"not leader", &pb.KvResponse{RegionError: &pb.RegionError{NotLeader: &pb.NotLeader{RegionId: 2}}}, false},
		{"invalid", &pb.KvResponse{RegionError: &pb.RegionError{InvalidRequest: &pb.InvalidRequest{Reason: "too big"}}}, true},
	} {
		w.violations = nil
		p.atLimitAnswer(1, probeExpect{what: "x", atLimit: true}, c.resp)
		if got := len(w.violations) > 0; got != c.violation {
			t.Errorf("%s: violation %v, want %v (%v)", c.name, got, c.violation, w.violations)
		}
	}
}

// TestProbeJudgesEveryAnswer: a store may answer a probe's request more
// than once (a duplicate or a late copy of it reaches the store again).
// Every answer is judged: a refusal first and the request served after is a
// violation, as the other way round. Counts and the history take the first.
func TestProbeJudgesEveryAnswer(t *testing.T) {
	w := newWorld(testConfig("answers"), 1, nil)
	w.stores = []*storeNode{{w: w, id: 1, gen: 3}}
	failed := &checker.Op{ClientID: ProbeNode, Kind: checker.OpPut, Key: "a000", Value: "v", Call: 5, Outcome: checker.OutcomeFailed}
	invalid := &pb.RegionError{InvalidRequest: &pb.InvalidRequest{Reason: "too big"}}
	notFound := &pb.RegionError{RegionNotFound: &pb.RegionNotFound{RegionId: 9}}
	for _, c := range []struct {
		name   string
		e      probeExpect
		refuse *pb.RegionError
		count  func(p *probe) int
	}{
		{"misrouted", probeExpect{what: "get in unknown region"}, notFound, func(p *probe) int { return p.rejected }},
		{"invalid", probeExpect{what: "a bad put", invalid: true, strict: true, gen: 3, failed: failed}, invalid, func(p *probe) int { return p.invalidRefused }},
		{"at the limit", probeExpect{what: "a get at the limit", atLimit: true}, nil, func(p *probe) int { return p.atLimitAnswered }},
	} {
		w.violations = nil
		p := &probe{w: w, expect: map[uint64]probeExpect{7: c.e}, answered: map[uint64]probeExpect{}, ops: map[uint64]probeOp{}}
		answer := func(err *pb.RegionError) {
			p.receive(pb.NewEnvelope(1, ProbeNode, &pb.KvResponse{RequestId: 7, RegionError: err}))
		}
		good, bad := c.refuse, (*pb.RegionError)(nil)
		if c.e.atLimit {
			good, bad = nil, invalid
		}
		answer(good)
		answer(good)
		if len(w.violations) != 0 || c.count(p) != 1 {
			t.Errorf("%s: two right answers: violations %v, counted %d; want none, 1", c.name, w.violations, c.count(p))
		}
		if c.e.invalid && len(p.history) != 1 {
			t.Errorf("%s: history %v, want the refused put once", c.name, p.history)
		}
		answer(bad)
		if len(w.violations) != 1 {
			t.Errorf("%s: a wrong answer after a right one: violations %v, want 1", c.name, w.violations)
		}
	}
}
