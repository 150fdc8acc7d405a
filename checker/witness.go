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
	// Chain the changers. From the state so far, a candidate is a changer
	// that can take effect there (its output follows from it), at a point
	// after the last one's and inside its own interval: as early as that,
	// or held for the observers of the state it replaces (all of them, or
	// only the reads of its value: an absent key or a failed cas's version
	// may be seen in another life of the key). Within a life the versions
	// leave one choice; a delete opens several (any open put or
	// cas-if-absent could start the next life, any open delete end it), so
	// the chain is a search: candidates in the order of their returns,
	// none placed where another changer would have returned before its
	// point (it could never be placed), no branch followed where a changer
	// left can no longer reach the state it needs (predecessorsPossible),
	// departing from the first candidate
	// at most maxDiscrepancies times along a chain (no departure first,
	// then one, ...: a limited discrepancy search), at most witnessSteps
	// placements in all; past them porcupine decides. The observers are
	// then placed on a full chain; if they cannot be, the search goes on.
	c := &chainer{changers: changers, observers: observers, budget: witnessSteps}
	c.used = make([]bool, len(changers))
	for d := 0; d <= maxDiscrepancies && c.budget > 0; d++ {
		c.cut = false
		if c.extend(kvState{}, int64(-1)<<62, len(changers), d, false) {
			return true
		}
		if !c.cut {
			return false // the search was whole: no chain exists
		}
	}
	return false
}

// maxDiscrepancies bounds how often the witness's chain may depart from
// the changer due first.
const maxDiscrepancies = 20

// witnessSteps bounds how many changers one witness places in all, over
// every branch of its search.
const witnessSteps = 200_000

// placed is an operation of the witness's linearization: its point, and
// its rank among operations at the same point (0 before a change, 1 the
// change, 2 after it).
type placed struct {
	at   int64
	rank int
	op   porcupine.Operation
}

// chainer searches the order of one key's state-changing operations.
type chainer struct {
	changers, observers []porcupine.Operation
	used                []bool
	budget              int
	cut                 bool      // a branch was left out for the discrepancies it needed
	states              []kvState // states[i]: the state before the i-th change of the chain
	points              []int64   // points[i]: when it takes effect
	chain               []porcupine.Operation
}

// extend extends the chain, whose last change took effect at t leaving
// st, by the left changers not used yet, and reports whether a full chain
// with every observer placed on it was found.
func (c *chainer) extend(st kvState, t int64, left, disc int, chose bool) bool {
	if left == 0 {
		return c.placeObservers(st)
	}
	// (Checked where the chain had a choice: with one candidate there was
	// nothing to get wrong, and the check costs a pass over the changers.)
	if chose && !c.predecessorsPossible(st) {
		return false
	}
	// The candidates, each with its point: as early as it can follow, but
	// no earlier than the observers of the state it replaces need (as late
	// as those need, within its own interval). A candidate whose point is
	// at or past another changer's return would leave that one
	// unplaceable: it is not one.
	type cand struct {
		i  int
		at int64
	}
	// The two earliest returns of the changers left: a candidate's point
	// must come before the earliest but its own.
	first, second, firstAt := int64(1)<<62, int64(1)<<62, -1
	for i := range c.changers {
		if r := c.changers[i].Return; !c.used[i] && r < second {
			if r < first {
				first, second, firstAt = r, first, i
			} else {
				second = r
			}
		}
	}
	var cands []cand
	for i := range c.changers {
		op := &c.changers[i] // not copied: the loops here are the witness's cost
		if c.used[i] {
			continue
		}
		limit := first
		if i == firstAt {
			limit = second
		}
		if max(t+1, op.Call) >= limit {
			continue
		}
		if ok, _ := step(st, op.Input.(*kvInput), op.Output.(*kvOutput)); !ok {
			continue
		}
		// Two points to try: held for every observer that may see the
		// state it replaces, or only for the reads of its value (the
		// others may see another life of the key, with the same version
		// or absent).
		hold, holdValue := int64(-1)<<62, int64(-1)<<62
		for j := range c.observers {
			o := &c.observers[j]
			if o.Call < op.Return && o.Return > t && sees(o, st) {
				hold = max(hold, o.Call)
				if readsValue(o) {
					holdValue = max(holdValue, o.Call)
				}
			}
		}
		base := max(t+1, op.Call)
		prev := int64(-1)
		for _, h := range []int64{hold, holdValue} {
			at := max(base, min(h+1, op.Return))
			if at > op.Return || at >= limit || at == prev {
				continue
			}
			prev = at
			cands = append(cands, cand{i, at})
		}
	}
	slices.SortStableFunc(cands, func(a, b cand) int { return cmp.Compare(c.changers[a.i].Return, c.changers[b.i].Return) })
	for k, cd := range cands {
		if c.budget <= 0 {
			return false
		}
		if k > disc {
			c.cut = true
			return false
		}
		c.budget--
		op := &c.changers[cd.i]
		_, next := step(st, op.Input.(*kvInput), op.Output.(*kvOutput))
		c.used[cd.i] = true
		c.states = append(c.states, st)
		c.points = append(c.points, cd.at)
		c.chain = append(c.chain, *op)
		if c.extend(next, cd.at, left-1, disc-k, len(cands) > 1) {
			return true
		}
		c.used[cd.i] = false
		c.states = c.states[:len(c.states)-1]
		c.points = c.points[:len(c.points)-1]
		c.chain = c.chain[:len(c.chain)-1]
	}
	return false
}

// predecessorsPossible reports whether every changer not used yet can
// still find the state it needs before it returns: the key absent (a put
// making version 1, a cas-if-absent), present at the version before the
// one it makes (a later put, a cas), or present at all (a delete). That
// state is st, or one a changer left could make, called before it
// returns. A branch where some changer cannot is dead, however far from
// its end (the chain of a key's lives goes wrong long before a changer is
// left past its return).
func (c *chainer) predecessorsPossible(st kvState) bool {
	never := int64(1) << 62
	firstMaking := map[uint64]int64{} // version -> earliest call of a changer left making it
	firstAny, firstDelete := never, never
	for i := range c.changers {
		if c.used[i] {
			continue
		}
		op := &c.changers[i]
		in, out := op.Input.(*kvInput), op.Output.(*kvOutput)
		if in.kind == OpDelete {
			firstDelete = min(firstDelete, op.Call)
			continue
		}
		firstAny = min(firstAny, op.Call)
		if f, ok := firstMaking[out.version]; !ok || op.Call < f {
			firstMaking[out.version] = op.Call
		}
	}
	for i := range c.changers {
		if c.used[i] {
			continue
		}
		op := &c.changers[i]
		in, out := op.Input.(*kvInput), op.Output.(*kvOutput)
		var possible bool
		switch {
		case in.kind == OpDelete:
			possible = st.present || firstAny < op.Return
		case out.version == 1:
			possible = !st.present || firstDelete < op.Return
		default:
			f, ok := firstMaking[out.version-1]
			possible = (st.present && st.version == out.version-1) || (ok && f < op.Return)
		}
		if !possible {
			return false
		}
	}
	return true
}

// sees reports whether observer o, taking effect in state st, gives its
// output there.
func sees(o *porcupine.Operation, st kvState) bool {
	ok, next := step(st, o.Input.(*kvInput), o.Output.(*kvOutput))
	return ok && next == st
}

// readsValue reports whether observer o saw a value: a get that found the
// key. Values are unique, so such a read sees one state only, the one the
// chain must hold for it. The others (an absent key, a failed cas's
// version) may be seen in another life of the key, and hold nothing.
func readsValue(o *porcupine.Operation) bool {
	return o.Input.(*kvInput).kind == OpGet && o.Output.(*kvOutput).found
}

// placeObservers places each observer at a point between the two changes
// of the chain whose state it sees (sharing a change's point, on the right
// side of it), inside its interval, and checks the result: it reports
// whether the whole linearization holds.
func (c *chainer) placeObservers(last kvState) bool {
	states := append(slices.Clip(c.states), last)
	order := make([]placed, 0, len(c.chain)+len(c.observers))
	for i, op := range c.chain {
		order = append(order, placed{c.points[i], 1, op})
	}
observers:
	for i := range c.observers {
		o := &c.observers[i]
		for j, s := range states {
			lo, hi := int64(-1)<<62, int64(1)<<62 // the state s holds from lo to hi
			if j > 0 {
				lo = c.points[j-1]
			}
			if j < len(c.points) {
				hi = c.points[j]
			}
			at := max(lo, o.Call)
			if at > hi || at > o.Return || !sees(o, s) {
				continue
			}
			rank := 1
			switch {
			case j > 0 && at == lo:
				rank = 2
			case j < len(c.points) && at == hi:
				rank = 0
			}
			order = append(order, placed{at, rank, *o})
			continue observers
		}
		return false
	}
	return proves(order)
}

// proves reports whether order is a linearization: in the points' order
// the operations respect real time and replay through the model with their
// outputs.
func proves(order []placed) bool {
	// No operation returned before one ordered ahead of it was called (a
	// return at the instant of a call counts as before it).
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
	st := kvState{}
	for _, p := range order {
		ok, next := step(st, p.op.Input.(*kvInput), p.op.Output.(*kvOutput))
		if !ok {
			return false
		}
		st = next
	}
	return true
}
