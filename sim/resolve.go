package sim

import (
	"slices"
	"time"

	"github.com/multiraft/multiraft/checker"
)

// writeID names a client write the way a region applies it: its session
// and its sequence in that session.
type writeID struct {
	session string
	seq     uint64
}

// writeApplied notes that a replica executed write id, now.
func (w *World) writeApplied(id writeID) {
	if id.seq == 0 {
		return // a write without a session: it cannot be told apart
	}
	if w.applied == nil {
		w.applied = make(map[writeID]time.Duration)
	}
	if _, seen := w.applied[id]; !seen {
		w.applied[id] = w.k.now
	}
}

// resolvedHistory is the history the linearizability check takes: the
// clients' operations, with each ambiguous write resolved by what the
// simulator saw the replicas do, then the probe's.
//
//   - Applied by some replica at time t: the write was committed by t, so
//     it took effect between its call and t (Op.EffectBy), its result
//     still unknown to the checker.
//   - Applied by no replica during the run: it took effect nowhere, and no
//     operation of the history can have seen it, so it is dropped, as a
//     failed operation is.
//
// A client cannot know either, but the check is of the system, not of the
// client's knowledge, and an ambiguous write open until the end of the run
// makes porcupine's search exponential in how many of them overlap (a
// swarm seed with twenty crashes and one hot key ran past the two-minute
// limit over 330 operations). Nothing is trusted that a correct system
// could do otherwise: a replica applies only committed entries, and a
// write applied twice, or applied under an identity its client had been
// told never applied, still shows in what the reads saw.
func (w *World) resolvedHistory() []checker.Op {
	ops := slices.Clone(w.history)
	for i := range ops {
		op := &ops[i]
		if op.Outcome != checker.OutcomeAmbiguous || i >= len(w.historyWrites) || w.historyWrites[i].seq == 0 {
			continue
		}
		if at, ok := w.applied[w.historyWrites[i]]; ok {
			op.EffectBy = int64(at)
		} else {
			op.Outcome = checker.OutcomeFailed
		}
	}
	if w.probe != nil {
		ops = append(ops, w.probe.history...)
	}
	return ops
}

// ambiguousResolved counts the clients' ambiguous writes some replica
// applied and those none did.
func (w *World) ambiguousResolved() (applied, neverApplied int) {
	for i, op := range w.history {
		if op.Outcome != checker.OutcomeAmbiguous || i >= len(w.historyWrites) || w.historyWrites[i].seq == 0 {
			continue
		}
		if _, ok := w.applied[w.historyWrites[i]]; ok {
			applied++
		} else {
			neverApplied++
		}
	}
	return applied, neverApplied
}
