package sim

import (
	"fmt"
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

// historyWrite ties a write of the history, by its index, to its identity.
type historyWrite struct {
	at int // index in World.history
	id writeID
}

// recordOp appends a client's operation to the history, with its identity
// when it is a write in a session (zero otherwise). The identity is kept
// with the operation's index, not by position in a parallel list: an
// operation appended to the history some other way (a test's planted
// read) is only left unresolved, and shifts no other write's identity.
func (w *World) recordOp(op checker.Op, id writeID) {
	if id.seq != 0 {
		w.historyWrites = append(w.historyWrites, historyWrite{at: len(w.history), id: id})
	}
	w.history = append(w.history, op)
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
	for _, hw := range w.historyWrites {
		op := &ops[hw.at]
		if op.Outcome != checker.OutcomeAmbiguous {
			continue
		}
		if at, ok := w.applied[hw.id]; ok {
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
	for _, hw := range w.historyWrites {
		if w.history[hw.at].Outcome != checker.OutcomeAmbiguous {
			continue
		}
		if _, ok := w.applied[hw.id]; ok {
			applied++
		} else {
			neverApplied++
		}
	}
	return applied, neverApplied
}

// checkAckedWritesApplied checks the ground the resolution stands on: a
// write its client was told succeeded was applied, under the identity its
// completion carries, by some replica. One that was not is a write
// acknowledged without being applied (an answer for another entry), or a
// completion whose identity is not the one the write applied under, which
// would make the resolution of ambiguous writes wrong.
func (w *World) checkAckedWritesApplied() {
	missing, first := 0, -1
	for _, hw := range w.historyWrites {
		if w.history[hw.at].Outcome != checker.OutcomeOK {
			continue
		}
		if _, ok := w.applied[hw.id]; !ok {
			if missing == 0 {
				first = hw.at
			}
			missing++
		}
	}
	if missing > 0 {
		op := w.history[first]
		w.violate(fmt.Sprintf("%d acknowledged writes were applied by no replica under their session and sequence, the first: client %d %s %q at t=%d..%d",
			missing, op.ClientID, op.Kind, op.Key, op.Call, op.Return))
	}
}
