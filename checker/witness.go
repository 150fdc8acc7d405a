package checker

import (
	"cmp"
	"slices"

	"github.com/anishathalye/porcupine"
)

// witness tries to prove one key's operations linearizable without a
// search, and reports whether it did. It only claims what it checked: the
// linearization it builds is replayed through the model, each operation at
// a point inside its interval, in the order of the points. When it cannot
// build one it returns false and porcupine decides (witness never says a
// history is not linearizable).
//
// It is the check for the histories porcupine's search cannot finish:
// dozens of operations open at once on a hot key through a partition, most
// of them reads (swarm seed 9860: 388 operations, up to 41 open at once,
// still unfinished after minutes and gigabytes). Every write returns the
// version it made, so the order of the operations that change the state is
// fixed by their outputs, up to when each takes effect: the state-changing
// operations are chained by version (a put or a successful cas makes the
// next version, a delete ends the key's life), each placed as early as it
// can follow the one before it, but no earlier than the reads of the state
// it replaces need (as late as those need, within its own interval); then
// each read, failed cas and delete of an absent key takes a point where the
// state is what it saw. A partition with an ambiguous write (its outcome
// unknown) is left to porcupine.
func witness(part []porcupine.Operation) bool {
	var changers, observers []porcupine.Operation
	for _, op := range part {
		in, out := op.Input.(*kvInput), op.Output.(*kvOutput)
		if in.unknown {
			return false
		}
		switch {
		case in.kind == OpPut, in.kind == OpCas && out.casOK, in.kind == OpDelete && out.deleted:
			changers = append(changers, op)
		case in.kind == OpGet, in.kind == OpCas, in.kind == OpDelete:
			observers = append(observers, op)
		default:
			return false
		}
	}
	// sees reports whether observer o, taking effect in state st, gives
	// its output there.
	sees := func(o *porcupine.Operation, st kvState) bool {
		ok, next := step(st, o.Input.(*kvInput), o.Output.(*kvOutput))
		return ok && next == st
	}
	type placed struct {
		at   int64
		rank int // at equal points: 0 before a change, 1 the change, 2 after it
		op   porcupine.Operation
	}
	var order []placed
	var states []kvState // states[i]: the state before changer i; then the last
	var points []int64   // points[i]: when changer i takes effect
	st := kvState{}
	t := int64(-1) << 62
	left := changers
	for len(left) > 0 {
		best := -1
		for i := range left {
			op := &left[i] // not copied: the loops here are the witness's cost
			if op.Return <= t {
				continue
			}
			if ok, _ := step(st, op.Input.(*kvInput), op.Output.(*kvOutput)); !ok {
				continue
			}
			if best < 0 || op.Return < left[best].Return {
				best = i
			}
		}
		if best < 0 {
			return false
		}
		op := left[best]
		// Hold the state while reads of it that may still come need it.
		hold := int64(-1) << 62
		for i := range observers {
			o := &observers[i]
			if o.Call < op.Return && o.Return > t && o.Call > hold && sees(o, st) {
				hold = o.Call
			}
		}
		at := max(t+1, op.Call, min(hold+1, op.Return))
		if at > op.Return {
			return false
		}
		_, next := step(st, op.Input.(*kvInput), op.Output.(*kvOutput))
		states = append(states, st)
		points = append(points, at)
		order = append(order, placed{at, 1, op})
		st, t = next, at
		left = slices.Delete(left, best, best+1) // changers is not used again
	}
	states = append(states, st)
	// Each observer at a point between the two changes whose state it
	// sees (sharing a change's point, on the right side of it), inside its
	// interval.
observers:
	for i := range observers {
		o := &observers[i]
		for j, s := range states {
			lo, hi := int64(-1)<<62, int64(1)<<62 // the state s holds from lo to hi
			if j > 0 {
				lo = points[j-1]
			}
			if j < len(points) {
				hi = points[j]
			}
			at := max(lo, o.Call)
			if at > hi || at > o.Return || !sees(o, s) {
				continue
			}
			rank := 1
			switch {
			case j > 0 && at == lo:
				rank = 2
			case j < len(points) && at == hi:
				rank = 0
			}
			order = append(order, placed{at, rank, *o})
			continue observers
		}
		return false
	}
	// The proof: the operations in the points' order respect real time (no
	// operation returned before one ordered ahead of it was called; a
	// return at the instant of a call counts as before it) and replay
	// through the model with their outputs.
	slices.SortStableFunc(order, func(a, b placed) int {
		return cmp.Or(cmp.Compare(a.at, b.at), cmp.Compare(a.rank, b.rank))
	})
	latestCall := int64(-1) << 62
	for _, p := range order {
		if p.op.Return <= latestCall {
			return false
		}
		latestCall = max(latestCall, p.op.Call)
	}
	st = kvState{}
	for _, p := range order {
		ok, next := step(st, p.op.Input.(*kvInput), p.op.Output.(*kvOutput))
		if !ok {
			return false
		}
		st = next
	}
	return true
}
