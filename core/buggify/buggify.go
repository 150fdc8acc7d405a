// Package buggify holds the fault hooks and the coverage counters that the
// product code calls at its dangerous points, as FoundationDB's BUGGIFY
// does: in a simulation, code that is correct must also be correct when,
// at the worst moment, a message is lost, a step is postponed or repeated,
// or the process dies.
//
// A node reaches them through its core.Env (Env.Buggify, a *B). In real
// mode that is nil, and every call is a nil check: Fire reports false and
// Reach counts nothing. A simulation builds one Run per run and gives each
// node a B of it.
//
// Hooks (Point). At the start of a run every hook is enabled or not, with
// probability Options.EnableProb, drawn in Point order from the run's own
// random stream (so which hooks a seed enables depends on nothing else). An
// enabled hook fires, each time the code passes it, with that hook's own
// probability (Point.FireProb), drawn from the same stream. A disabled hook
// draws nothing: a run with no hook enabled is the run without buggify.
// After Stop (the simulator calls it when the workload ends and the world
// is healed) no hook fires. Each hook does only what the system promises to
// survive: a message lost, duplicated or late, a step postponed or done
// twice, a process that fails stop (ErrCrash) and restarts from its disk.
// None corrupts what was synced.
//
// Coverage (Event). Reach counts a dangerous situation the code found
// itself in (a leader change while a split is pending, a stale epoch
// refused, ...), whether or not buggify is on, so that a sweep can show
// that its scenarios reach what they are named for. Counting never draws
// a random number, never notes anything in the trace, and changes nothing.
//
// Docs: docs/testing.md, "Fault hooks" and "Coverage".
package buggify

import (
	"errors"
	"fmt"
	"time"

	"github.com/multiraft/multiraft/core/rng"
)

// ErrCrash is the error a "crash here" hook makes the store's ready round
// return: the store fails stop, as after a disk error, and its driver
// reopens it from disk (the simulator restarts it a moment later). Match it
// with errors.Is.
var ErrCrash = errors.New("buggify: injected crash")

// Crash returns the injected crash error of hook p.
func Crash(p Point) error { return fmt.Errorf("%w at %s", ErrCrash, p) }

// Options configure a run's hooks.
type Options struct {
	// EnableProb is the chance that each hook is enabled in a run (default
	// 0.25, as FoundationDB's); a negative value enables none.
	EnableProb float64
	// Force, when not empty, enables exactly these hooks (and no others),
	// whatever EnableProb says.
	Force []Point
}

// DefaultEnableProb is the chance that a hook is enabled in a run.
const DefaultEnableProb = 0.25

// Run is the hooks and counters of one simulation run, shared by its nodes.
// It is not safe for concurrent use.
type Run struct {
	r       *rng.Rand
	enabled [NumPoints]bool
	passes  [NumPoints]uint64
	fired   [NumPoints]uint64
	reached [NumEvents]uint64
	stopped bool
	note    func(string)
}

// NewRun draws which hooks are enabled from r, which the run owns from now
// on (a stream of its own: nothing else may draw from it). note, when not
// nil, is told of every firing (the simulator writes it in the trace).
func NewRun(r *rng.Rand, opts Options, note func(string)) *Run {
	run := &Run{r: r, note: note}
	p := opts.EnableProb
	if p == 0 {
		p = DefaultEnableProb
	}
	if len(opts.Force) > 0 {
		for _, pt := range opts.Force {
			if pt >= 0 && pt < NumPoints {
				run.enabled[pt] = true
			}
		}
		return run
	}
	if p < 0 {
		return run
	}
	for pt := Point(0); pt < NumPoints; pt++ {
		run.enabled[pt] = r.Float64() < p
	}
	return run
}

// Enable enables hook p besides those drawn (it draws nothing).
func (run *Run) Enable(p Point) {
	if p >= 0 && p < NumPoints {
		run.enabled[p] = true
	}
}

// Node returns the handle node id uses (its Env.Buggify). A nil run gives
// nil, which fires nothing and counts nothing.
func (run *Run) Node(id uint64) *B {
	if run == nil {
		return nil
	}
	return &B{run: run, node: id}
}

// Stop disables every hook for the rest of the run; coverage goes on being
// counted.
func (run *Run) Stop() { run.stopped = true }

// Enabled lists the hooks enabled in the run, in Point order.
func (run *Run) Enabled() []Point {
	var out []Point
	for pt := Point(0); pt < NumPoints; pt++ {
		if run.enabled[pt] {
			out = append(out, pt)
		}
	}
	return out
}

// Passes is how often the code passed hook p while it was enabled.
func (run *Run) Passes(p Point) uint64 { return run.passes[p] }

// Fired is how often hook p fired.
func (run *Run) Fired(p Point) uint64 { return run.fired[p] }

// Reached is how often the code reached coverage event e.
func (run *Run) Reached(e Event) uint64 { return run.reached[e] }

// B is one node's handle on its run's hooks and counters. Its methods are
// safe on a nil B (real mode): they do nothing.
type B struct {
	run  *Run
	node uint64
}

// Fire reports whether hook p fires now: it is enabled in this run, the run
// is not stopped, and the hook's draw says so.
func (b *B) Fire(p Point) bool {
	if b == nil {
		return false
	}
	run := b.run
	if !run.enabled[p] || run.stopped {
		return false
	}
	run.passes[p]++
	if run.r.Float64() >= p.FireProb() {
		return false
	}
	run.fired[p]++
	if run.note != nil {
		run.note(fmt.Sprintf("buggify %s fired on node %d", p, b.node))
	}
	return true
}

// Delay draws a delay in [min, max] for a hook that fired (from the run's
// stream); 0 on a nil B.
func (b *B) Delay(min, max time.Duration) time.Duration {
	if b == nil {
		return 0
	}
	if max <= min {
		return min
	}
	return min + time.Duration(b.run.r.Int63n(int64(max-min)+1))
}

// Intn draws a uniform integer in [0, n) for a hook that fired; 0 on a nil
// B.
func (b *B) Intn(n int) int {
	if b == nil {
		return 0
	}
	return b.run.r.Intn(n)
}

// Reach counts coverage event e.
func (b *B) Reach(e Event) {
	if b == nil {
		return
	}
	b.run.reached[e]++
}

// Counting reports whether coverage is counted (not real mode): code that
// must do extra work to find out whether it reached an event (scan a log,
// say) does it only then.
func (b *B) Counting() bool { return b != nil }
