package checker

import (
	"cmp"
	"slices"

	"github.com/anishathalye/porcupine"
)

// witness tries to prove one key's operations linearizable without
// porcupine's search, and reports whether it did. It only claims what it
// checked: the linearization it builds is replayed through the model, each
// operation at a point inside its interval, in the order of the points.
// When it cannot build one it returns false and porcupine decides (witness
// never says a history is not linearizable).
//
// It is the check for the histories porcupine's search cannot finish:
// dozens of operations open at once on a hot key through a partition, most
// of them reads (swarm seed 9860: 388 operations, up to 41 open at once,
// still unfinished after minutes and gigabytes). Every write returns the
// version it made, so the order of the operations that change the state is
// fixed by their outputs, up to when each takes effect: the state-changing
// operations are chained by version (a put or a successful cas makes the
// next version, a delete ends the key's life), each placed as early as it
// can follow the one before it, but no earlier than the observers of the
// state it replaces need (all of them, or only those that can see no other
// state: see extend); then each read, failed cas and delete of an
// absent key takes a point where the state is what it saw. A partition
// with an ambiguous write (its outcome unknown) is left to porcupine.
//
// Within a life the versions leave one choice; a delete opens several (any
// open put or cas-if-absent could start the next life, any open delete end
// it), so the chain is a depth-first search, at most witnessSteps
// placements in all. extend prunes a branch as soon as it is dead, so a
// wrong choice is undone a few steps after it was made: swarm seed 6038's
// hot key, 1,864 operations with 225 deletes and a few operations open
// across a partition, takes about 4,000 placements.
func witness(part []porcupine.Operation) bool {
	ok, _ := witnessWithin(part, witnessSteps)
	return ok
}

// beforeAll and afterAll are points before every call and after every
// return of the operations the witness orders.
const (
	beforeAll = -(int64(1) << 62)
	afterAll  = int64(1) << 62
)

// witnessSteps bounds how many changers one witness places in all, over
// every branch of its search; past them porcupine decides.
const witnessSteps = 200_000

// witnessWork bounds the witness's work as well: each step of the search
// passes over the key's operations, so a step costs their number, and so
// does each candidate point checked against the observers. It keeps a
// search that cannot succeed on a key of thousands of operations to about
// half a second (200,000 steps over 2,000 operations took 4 s), and leaves
// the keys it proves (swarm seeds 6038 and 1613: 3,988 and 794 steps over
// 1,864 and 2,534 operations) far inside it.
const witnessWork = 50_000_000

// witnessWithin is witness with a bound on the placements of its search.
// It also returns how many it made.
func witnessWithin(part []porcupine.Operation, budget int) (bool, int) {
	var changers, observers []porcupine.Operation
	for _, op := range part {
		in, out := op.Input.(*kvInput), op.Output.(*kvOutput)
		if in.unknown {
			return false, 0
		}
		switch {
		case in.kind == OpPut, in.kind == OpCas && out.casOK, in.kind == OpDelete && out.deleted:
			changers = append(changers, op)
		case in.kind == OpGet, in.kind == OpCas, in.kind == OpDelete:
			observers = append(observers, op)
		default:
			return false, 0
		}
	}
	for i := range changers {
		// A change making version k follows k-1 others in its life; a
		// version past their number has no chain (and would size the
		// search's tables).
		if class(&changers[i]) > uint64(len(changers)) {
			return false, 0
		}
	}
	c := newChainer(changers, observers, budget)
	ok := c.extend(kvState{}, beforeAll, len(changers), false)
	return ok, budget - c.budget
}

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
	// due[i]: the latest point changer i can take: its return, or the
	// earliest return of a read of its value, if earlier (values are
	// unique: the read sees that changer's state).
	due []int64
	// uniqueRead[j]: observer j read a value exactly one changer writes.
	uniqueRead []bool
	byDue      []int    // the changers in the order of their due times
	byCall     []int    // the changers in the order of their calls
	cls        []uint64 // cls[i]: class(changer i)
	// callsIn[k]: the changers making version k (0: the deletes), in the
	// order of their calls. A state of version v can be followed only by
	// a change of class v+1 or, if present, 0.
	callsIn  [][]int
	obsByRet []int // the observers in the order of their returns
	// callsOf[k] and returnsOf[k]: the observers that can see only states
	// of version k (0: the key absent), in the order of their calls and of
	// their returns. Every observer sees one version at most (seenVersion),
	// so the observers of a state are looked for among its version's alone.
	callsOf, returnsOf [][]int

	used   []bool
	budget int
	work   int       // witnessWork left
	states []kvState // states[i]: the state before the i-th change of the chain
	points []int64   // points[i]: when it takes effect
	chain  []porcupine.Operation

	// Scratch space of one step of the search, kept to reuse.
	first, second []int64   // by version (0: absent), the two earliest calls of the changers left making it
	firstOf       []int     // which changer is first[k]
	seen          []int64   // the calls, in order, of the observers open that see the last state
	bys           []classBy // mustBy's results of this step
	succ, pred    [][]int64 // predecessorsMatch's lists
}

// classBy is a result of mustBy: for changers making version k (0: a
// delete), the earliest first one made of them, or another, must be in
// place by.
type classBy struct {
	k       uint64
	isFirst bool
	by      int64
}

func newChainer(changers, observers []porcupine.Operation, budget int) *chainer {
	c := &chainer{changers: changers, observers: observers, budget: budget, work: witnessWork}
	c.used = make([]bool, len(changers))
	c.due, c.uniqueRead = dueTimes(changers, observers)
	var maxVersion uint64
	c.byDue = make([]int, len(changers))
	c.byCall = make([]int, len(changers))
	c.cls = make([]uint64, len(changers))
	for i := range changers {
		c.byDue[i], c.byCall[i] = i, i
		c.cls[i] = class(&changers[i])
		maxVersion = max(maxVersion, c.cls[i])
	}
	slices.SortStableFunc(c.byDue, func(a, b int) int { return cmp.Compare(c.due[a], c.due[b]) })
	slices.SortStableFunc(c.byCall, func(a, b int) int { return cmp.Compare(changers[a].Call, changers[b].Call) })
	obsByCall := make([]int, len(observers))
	c.obsByRet = make([]int, len(observers))
	for j := range observers {
		obsByCall[j], c.obsByRet[j] = j, j
	}
	slices.SortStableFunc(obsByCall, func(a, b int) int { return cmp.Compare(observers[a].Call, observers[b].Call) })
	slices.SortStableFunc(c.obsByRet, func(a, b int) int { return cmp.Compare(observers[a].Return, observers[b].Return) })
	c.callsOf = make([][]int, maxVersion+1)
	c.returnsOf = make([][]int, maxVersion+1)
	for _, j := range obsByCall {
		if k := seenVersion(&observers[j]); k <= maxVersion { // past it: no state of the chain has it
			c.callsOf[k] = append(c.callsOf[k], j)
		}
	}
	for _, j := range c.obsByRet {
		if k := seenVersion(&observers[j]); k <= maxVersion {
			c.returnsOf[k] = append(c.returnsOf[k], j)
		}
	}
	c.callsIn = make([][]int, maxVersion+1)
	for _, i := range c.byCall {
		c.callsIn[c.cls[i]] = append(c.callsIn[c.cls[i]], i)
	}
	c.first = make([]int64, maxVersion+1)
	c.second = make([]int64, maxVersion+1)
	c.firstOf = make([]int, maxVersion+1)
	c.succ = make([][]int64, maxVersion+2)
	c.pred = make([][]int64, maxVersion+2)
	return c
}

// dueTimes returns, for each changer, the latest point it can take
// effect: its return, or earlier, the earliest return of a read of the
// value it writes (values are unique: a read of one sees that changer's
// state, so the changer came before the read returned). A value written
// twice bounds neither. It also reports which observers read a value
// exactly one changer writes.
func dueTimes(changers, observers []porcupine.Operation) ([]int64, []bool) {
	due := make([]int64, len(changers))
	writer := map[string]int{}
	for i := range changers {
		due[i] = changers[i].Return
		in := changers[i].Input.(*kvInput)
		if in.kind == OpDelete {
			continue
		}
		if _, dup := writer[in.value]; dup {
			writer[in.value] = -1
		} else {
			writer[in.value] = i
		}
	}
	unique := make([]bool, len(observers))
	for j := range observers {
		o := &observers[j]
		if !readsValue(o) {
			continue
		}
		if i, ok := writer[o.Output.(*kvOutput).value]; ok && i >= 0 {
			due[i] = min(due[i], o.Return)
			unique[j] = true
		}
	}
	return due, unique
}

// extend extends the chain, whose last change took effect at t leaving
// st, by the left changers not used yet, and reports whether a full chain
// with every observer placed on it was found.
//
// The candidates are the changers that can take effect in st (their
// output follows from it), each at a point after t and inside its
// interval, before every other changer's due time (that one could never
// be placed), by its own due time, and by the return of every observer
// that must see the state it makes (mustBy); and no earlier than the call
// of every observer that must see st (mustHold). Two points to try: held
// for every observer that may see st and can still be served (called
// before that latest point), or only for those that must (the others may
// see another life of the key, with the same version or absent). They are
// tried in the order of their due times. A branch is dead, and left at
// once, where an observer has returned with no state of the chain it sees
// in its interval (observersPass), or, where the chain had a choice, where
// the changers left cannot all find a predecessor (predecessorsMatch). At
// most budget placements in all, and witnessWork of work.
func (c *chainer) extend(st kvState, t int64, left int, chose bool) bool {
	if left == 0 {
		return c.placeObservers(st)
	}
	if c.work -= len(c.changers) + len(c.observers); c.work <= 0 {
		return false // out of work: the search is over
	}
	// (Checked where the chain had a choice: with one candidate there was
	// nothing to get wrong, and the check costs a pass over the changers.)
	if chose && !c.predecessorsMatch(st) {
		return false
	}
	// The two earliest due times of the changers left: a candidate's point
	// must come before the earliest but its own.
	first, second, firstAt := afterAll, afterAll, -1
	for _, i := range c.byDue {
		if c.used[i] {
			continue
		}
		if firstAt >= 0 {
			second = c.due[i]
			break
		}
		first, firstAt = c.due[i], i
	}
	// The classes of the changes that can follow st (see callsIn).
	follow := [2]uint64{st.version + 1, 0}
	classes := follow[:1]
	if st.present {
		classes = follow[:]
	}
	c.firstCalls(st.version)
	for _, k := range classes {
		c.firstCalls(k)
	}
	must := c.mustHold(st, t)
	c.bys = c.bys[:0]
	type cand struct {
		i  int
		at int64
	}
	var cands []cand
	for _, k := range classes {
		if k >= uint64(len(c.callsIn)) {
			continue
		}
		for _, i := range c.callsIn[k] {
			op := &c.changers[i] // not copied: the loops here are the witness's cost
			if c.used[i] {
				continue
			}
			limit := first
			if i == firstAt {
				limit = second
			}
			base := max(t+1, op.Call)
			if base >= limit {
				continue
			}
			ok, next := step(st, op.Input.(*kvInput), op.Output.(*kvOutput))
			if !ok {
				continue
			}
			latest := min(c.due[i], c.mustBy(i, next, t))
			if must > latest {
				continue
			}
			hold := must
			if k, _ := slices.BinarySearch(c.seen, min(limit, latest)); k > 0 {
				hold = max(hold, c.seen[k-1])
			}
			for _, h := range []int64{hold, must} {
				at := max(base, min(h+1, latest))
				if at > latest || at >= limit || (len(cands) > 0 && cands[len(cands)-1] == cand{i, at}) {
					continue
				}
				cands = append(cands, cand{i, at})
			}
		}
	}
	// In the order of their due times, and of the changers' indexes between
	// equal ones (a changer's two points in the order found).
	slices.SortStableFunc(cands, func(a, b cand) int {
		return cmp.Or(cmp.Compare(c.due[a.i], c.due[b.i]), cmp.Compare(a.i, b.i))
	})
	for _, cd := range cands {
		if c.budget <= 0 || c.work <= 0 {
			return false
		}
		if c.work -= len(c.observers); !c.observersPass(st, cd.at) {
			continue
		}
		c.budget--
		op := &c.changers[cd.i]
		_, next := step(st, op.Input.(*kvInput), op.Output.(*kvOutput))
		c.used[cd.i] = true
		c.states = append(c.states, st)
		c.points = append(c.points, cd.at)
		c.chain = append(c.chain, *op)
		if c.extend(next, cd.at, left-1, len(cands) > 1) {
			return true
		}
		c.used[cd.i] = false
		c.states = c.states[:len(c.states)-1]
		c.points = c.points[:len(c.points)-1]
		c.chain = c.chain[:len(c.chain)-1]
	}
	return false
}

// class is the version a changer makes, 0 for a delete (the key absent).
func class(op *porcupine.Operation) uint64 {
	if op.Input.(*kvInput).kind == OpDelete {
		return 0
	}
	return op.Output.(*kvOutput).version
}

// firstCalls sets, for version k, the two earliest calls of the changers
// left making it (k = 0: the deletes), and which changer makes the
// earliest. A step needs them for its state's version and the ones that
// can follow it; the other versions' entries are stale.
func (c *chainer) firstCalls(k uint64) {
	if k >= uint64(len(c.first)) {
		return
	}
	c.first[k], c.second[k], c.firstOf[k] = afterAll, afterAll, -1
	for _, i := range c.callsIn[k] {
		if c.used[i] {
			continue
		}
		if c.firstOf[k] >= 0 {
			c.second[k] = c.changers[i].Call
			return
		}
		c.first[k], c.firstOf[k] = c.changers[i].Call, i
	}
}

// mustHold returns the latest call of an observer that must see st, the
// state the chain's last change made at t: the next change comes no
// earlier. An observer must when it sees st and can see no other state: a
// read of st's value (values are unique), or, called after t (past every
// earlier state), one that sees an absent key with no delete left called
// by its return, or a failed cas that sees st's version with no changer
// left making that version called by its return. It also sets c.seen to
// the calls of the observers that see st and return after t, in order.
func (c *chainer) mustHold(st kvState, t int64) int64 {
	other := c.first[st.version] // the earliest call of a changer left making a state like st
	must := beforeAll
	c.seen = c.seen[:0]
	for _, j := range c.callsOf[st.version] {
		o := &c.observers[j]
		if o.Return <= t || !sees(o, st) {
			continue
		}
		c.seen = append(c.seen, o.Call)
		if (readsValue(o) && c.uniqueRead[j]) || (o.Call > t && other > o.Return) {
			must = o.Call
		}
	}
	return must
}

// mustBy returns the earliest return of an observer that must see next,
// the state changer i makes (t: when the chain's last change took
// effect): changer i comes no later. Called after t (past every earlier
// state), an observer must see next when it sees an absent key and no
// other delete left was called by its return, or when it is a failed cas
// that sees next's version and no other changer left making that version
// was called by its return. (The reads of next's value bound its due
// time already.) The result depends on i only through its version and
// whether it is the first of them: it is kept for the step.
func (c *chainer) mustBy(i int, next kvState, t int64) int64 {
	k := next.version
	isFirst := c.firstOf[k] == i
	for _, b := range c.bys {
		if b.k == k && b.isFirst == isFirst {
			return b.by
		}
	}
	other := c.first[k] // the earliest call of another changer left making a state like next
	if isFirst {
		other = c.second[k]
	}
	by := afterAll
	rets := c.returnsOf[k]
	start, _ := slices.BinarySearchFunc(rets, t+1, func(j int, r int64) int { return cmp.Compare(c.observers[j].Return, r) })
	for _, j := range rets[start:] {
		o := &c.observers[j]
		if o.Call > t && other > o.Return && !readsValue(o) && sees(o, next) {
			by = o.Return
			break
		}
	}
	c.bys = append(c.bys, classBy{k, isFirst, by})
	return by
}

// observersPass reports whether every observer that returns before at,
// where the chain's next change would take effect, and not before the
// last one (whose state st it replaces), finds a state of the chain it
// sees inside its interval: where one cannot (every later state comes
// after its return), no chain extending this one places it.
func (c *chainer) observersPass(st kvState, at int64) bool {
	n := len(c.points)
	t := beforeAll // when st took effect
	if n > 0 {
		t = c.points[n-1]
	}
	k, _ := slices.BinarySearchFunc(c.obsByRet, t, func(j int, t int64) int { return cmp.Compare(c.observers[j].Return, t) })
observers:
	for _, j := range c.obsByRet[k:] {
		o := &c.observers[j]
		if o.Return >= at {
			break
		}
		// The states from the last back, while they hold after o's call:
		// st from t to at, c.states[j] from points[j-1] to points[j].
		hi := at
		for j := n; j >= 0; j-- {
			s := st
			if j < n {
				s, hi = c.states[j], c.points[j]
			}
			if hi < o.Call {
				break
			}
			if sees(o, s) {
				continue observers
			}
		}
		return false
	}
	return true
}

// predecessorsMatch reports whether the changers not used yet can each
// find a predecessor: the change right before it in the chain, a
// different one for each (a state is replaced once). A put or cas making
// version k follows one making k-1 (version 1: a delete); a delete follows
// any put or cas; the first of them follows st. A predecessor takes effect
// after its call and before its successor, which takes effect by its due
// time: a changer can follow one called before its due time. For each
// kind of successor this is a matching in which the candidates of the
// later due times include those of the earlier ones, so it exists exactly
// when, for every n, the n due first have n predecessors called before
// the n-th due time (Hall's condition). Every chain extending this one
// has such predecessors: where they are missing the branch is dead,
// however far from its end (the chain of a key's lives goes wrong long
// before a changer is left past its return).
func (c *chainer) predecessorsMatch(st kvState) bool {
	// Kind k >= 1: the changers making version k; kind 0: the deletes.
	for k := range c.succ {
		c.succ[k], c.pred[k] = c.succ[k][:0], c.pred[k][:0]
	}
	if st.present { // st's change: called before anything
		c.pred[st.version+1] = append(c.pred[st.version+1], beforeAll)
		c.pred[0] = append(c.pred[0], beforeAll)
	} else {
		c.pred[1] = append(c.pred[1], beforeAll)
	}
	for _, i := range c.byCall {
		if c.used[i] {
			continue
		}
		op := &c.changers[i]
		if k := c.cls[i]; k == 0 {
			c.pred[1] = append(c.pred[1], op.Call)
		} else {
			c.pred[k+1] = append(c.pred[k+1], op.Call)
			c.pred[0] = append(c.pred[0], op.Call)
		}
	}
	for _, i := range c.byDue {
		if !c.used[i] {
			k := c.cls[i]
			c.succ[k] = append(c.succ[k], c.due[i])
		}
	}
	for k := range c.succ {
		p := c.pred[k]
		n := 0 // predecessors called before the due time at hand
		for j, d := range c.succ[k] {
			for n < len(p) && p[n] < d {
				n++
			}
			if n <= j {
				return false
			}
		}
	}
	return true
}

// seenVersion is the version of every state observer o can see (sees): a
// found get's version, a failed cas's, and 0, the key absent, for a get
// that found nothing and a delete of an absent key.
func seenVersion(o *porcupine.Operation) uint64 {
	in, out := o.Input.(*kvInput), o.Output.(*kvOutput)
	switch {
	case in.kind == OpGet && !out.found, in.kind == OpDelete:
		return 0
	}
	return out.version
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
// version) may be seen in another life of the key.
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
		// The states that end before o's call cannot hold inside its
		// interval: the first that can is the one the first change at or
		// after o's call ends.
		first, _ := slices.BinarySearch(c.points, o.Call)
		for j := first; j < len(states); j++ {
			s := states[j]
			lo, hi := beforeAll, afterAll // the state s holds from lo to hi
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
	latestCall := beforeAll
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
