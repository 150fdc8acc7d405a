package sim

import (
	"testing"
	"time"

	"github.com/multiraft/multiraft/core/session"
)

// A client whose clock is more than the session lifetime ahead of the
// stores' has every session write refused as clock dependent: the refusals
// reach it, and it calls none of those writes failed (a copy might apply
// later). A skew of zero is no skew: the run is the one without the field.
func TestClientClockSkew(t *testing.T) {
	const ttl = 2 * time.Second
	cfg := testConfig("client-clock-skew")
	cfg.Duration = 5 * time.Second
	cfg.Store.SessionLimits = session.Limits{TTL: ttl}

	plain := Run(cfg, 1, nil)
	if !plain.OK || plain.ClockRefusals != 0 || plain.Coverage["session.clock-ahead"] != 0 {
		t.Fatalf("no skew: ok=%v %q, %d clock refusals, coverage %v", plain.OK, plain.Violation, plain.ClockRefusals, plain.Coverage)
	}
	zero := cfg
	zero.ClientClockSkew = []Latency{{}, {}, {}, {}}
	if rep := Run(zero, 1, nil); rep.TraceHash != plain.TraceHash {
		t.Fatalf("zero skews changed the run: trace %s, without them %s", rep.TraceHash, plain.TraceHash)
	}

	skewed := cfg
	skewed.ClientClockSkew = []Latency{{Min: ttl + time.Second, Max: ttl + time.Second}}
	rep := Run(skewed, 1, nil)
	if !rep.OK {
		t.Fatalf("skewed client: %s", rep.Violation)
	}
	if rep.ClockRefusals == 0 || rep.Coverage["session.clock-ahead"] == 0 {
		t.Fatalf("a client 1 s past the session lifetime ahead got no clock-dependent refusal (%d, coverage %v)", rep.ClockRefusals, rep.Coverage)
	}
	if rep.OpsFailed != 0 {
		t.Fatalf("%d operations failed: a clock-dependent refusal is not definite", rep.OpsFailed)
	}
	t.Logf("skewed: %d ops, %d ambiguous, %d clock refusals; plain: %d ops", rep.OpsTotal, rep.OpsAmbiguous, rep.ClockRefusals, plain.OpsTotal)
	if rep.TraceHash == plain.TraceHash {
		t.Fatal("the skew changed nothing")
	}
}
