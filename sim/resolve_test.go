package sim

import (
	"strings"
	"testing"

	"github.com/multiraft/multiraft/checker"
)

// An operation another part of the simulator (a probe, a test's plant)
// adds to the history without a write identity must not shift the
// identities of the clients' operations recorded after it: each
// ambiguous write is resolved by its own identity.
func TestResolvedHistoryKeepsIdentitiesWithTheirOps(t *testing.T) {
	w := &World{k: newKernel(nil)}
	put := func(value string, call int64) checker.Op {
		return checker.Op{ClientID: 1, Kind: checker.OpPut, Key: "x", Value: value, Call: call, Outcome: checker.OutcomeAmbiguous}
	}
	a, b := writeID{"s", 1}, writeID{"s", 2}
	w.recordOp(put("1", 10), a)
	// A read added by someone else, with no identity.
	w.history = append(w.history, checker.Op{ClientID: 2, Kind: checker.OpGet, Key: "x", Call: 20, Return: 30, Outcome: checker.OutcomeOK})
	w.recordOp(put("2", 40), b)
	w.k.now = 50
	w.writeApplied(b, executedResult{version: 7}) // only the second write applied

	ops := w.resolvedHistory()
	if ops[0].Outcome != checker.OutcomeFailed {
		t.Errorf("write 1, never applied: %v, EffectBy %d; want failed", ops[0].Outcome, ops[0].EffectBy)
	}
	if ops[1].Outcome != checker.OutcomeOK || ops[1].EffectBy != 0 {
		t.Errorf("the read: %+v", ops[1])
	}
	if ops[2].Outcome != checker.OutcomeOK || ops[2].Return != 50 || ops[2].Version != 7 {
		t.Errorf("write 2, applied at 50 making version 7: %v, returned %d, version %d", ops[2].Outcome, ops[2].Return, ops[2].Version)
	}
	if w.history[2].Outcome != checker.OutcomeAmbiguous {
		t.Errorf("the recorded history changed: %+v", w.history[2])
	}
	if applied, never := w.ambiguousResolved(); applied != 1 || never != 1 {
		t.Errorf("ambiguousResolved: %d applied, %d never", applied, never)
	}
}

// An acknowledged write must have been applied under the identity its
// completion carries: the ground the resolution of ambiguous writes
// stands on.
func TestAckedWriteAppliedByNoReplicaIsAViolation(t *testing.T) {
	w := &World{k: newKernel(nil)}
	ok := func(value string, call int64) checker.Op {
		return checker.Op{ClientID: 1, Kind: checker.OpPut, Key: "x", Value: value, Call: call, Return: call + 5, Outcome: checker.OutcomeOK, Version: 1}
	}
	w.recordOp(ok("1", 10), writeID{"s", 1})
	w.writeApplied(writeID{"s", 1}, executedResult{version: 1})
	w.checkAckedWritesApplied()
	if len(w.violations) != 0 {
		t.Fatalf("applied: %v", w.violations)
	}
	w.recordOp(ok("2", 20), writeID{"s", 2})
	w.writeApplied(writeID{"t", 1}, executedResult{version: 1}) // another identity
	w.checkAckedWritesApplied()
	if len(w.violations) != 1 || !strings.Contains(w.violations[0], "applied by no replica") {
		t.Fatalf("violations: %v", w.violations)
	}
}
