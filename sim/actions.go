package sim

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Every fault action a plan schedules — each Planner.At and each firing of
// an OnSplitProposed, OnSplitApplied, OnMembershipChanged, OnSnapshotStarted
// or OnPeerDestroyed callback — gets an index, in the order it is scheduled.
// Actions a plan schedules up front (before the run starts) are numbered
// 0, 1, ... in the order of its At calls; those scheduled while the run goes
// on follow. Config.FaultEdits names actions by these indices to skip them
// or move them to another time, so a reduced fault schedule (see Shrink) is
// an exact configuration that replays.

// FaultEdits alters a run's planned fault actions by index. The zero value
// changes nothing.
type FaultEdits struct {
	// Skip lists actions that do not run: their event is kept in the trace
	// as "fault skipped ...", their function never runs.
	Skip []int
	// Retime moves actions to another time since the start of the run (at
	// once when that time has passed by the time the action is scheduled).
	Retime []Retime
}

// Retime moves fault action Index to time At.
type Retime struct {
	Index int
	At    time.Duration
}

// Empty reports whether e changes nothing.
func (e FaultEdits) Empty() bool { return len(e.Skip) == 0 && len(e.Retime) == 0 }

// skips reports whether action i is skipped.
func (e FaultEdits) skips(i int) bool { return slices.Contains(e.Skip, i) }

// retimed returns the time action i is moved to, if it is.
func (e FaultEdits) retimed(i int) (time.Duration, bool) {
	for _, r := range e.Retime {
		if r.Index == i {
			return r.At, true
		}
	}
	return 0, false
}

// Normalized returns e with Skip sorted and deduplicated and Retime sorted
// by index (the last edit of an index wins), without retimes of skipped
// actions.
func (e FaultEdits) Normalized() FaultEdits {
	var out FaultEdits
	out.Skip = slices.Clone(e.Skip)
	slices.Sort(out.Skip)
	out.Skip = slices.Compact(out.Skip)
	for _, r := range e.Retime {
		if out.skips(r.Index) {
			continue
		}
		if j := slices.IndexFunc(out.Retime, func(x Retime) bool { return x.Index == r.Index }); j >= 0 {
			out.Retime[j] = r
		} else {
			out.Retime = append(out.Retime, r)
		}
	}
	slices.SortFunc(out.Retime, func(a, b Retime) int { return a.Index - b.Index })
	return out
}

// SkipFlag renders Skip as the command's --faults-skip value ("3,5,9").
func (e FaultEdits) SkipFlag() string {
	parts := make([]string, len(e.Skip))
	for i, s := range e.Skip {
		parts[i] = strconv.Itoa(s)
	}
	return strings.Join(parts, ",")
}

// RetimeFlag renders Retime as the command's --faults-at value
// ("7=12.5s,9=20s").
func (e FaultEdits) RetimeFlag() string {
	parts := make([]string, len(e.Retime))
	for i, r := range e.Retime {
		parts[i] = fmt.Sprintf("%d=%v", r.Index, r.At)
	}
	return strings.Join(parts, ",")
}

// ParseSkipFlag parses a --faults-skip value: action indices separated by
// commas (empty: none).
func ParseSkipFlag(s string) ([]int, error) {
	var out []int
	if s == "" {
		return nil, nil
	}
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("fault action index %q: want a number >= 0", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// ParseRetimeFlag parses a --faults-at value: INDEX=DURATION pairs
// separated by commas (empty: none).
func ParseRetimeFlag(s string) ([]Retime, error) {
	var out []Retime
	if s == "" {
		return nil, nil
	}
	for _, f := range strings.Split(s, ",") {
		i, d, ok := strings.Cut(strings.TrimSpace(f), "=")
		n, err1 := strconv.Atoi(i)
		at, err2 := time.ParseDuration(d)
		if !ok || err1 != nil || err2 != nil || n < 0 || at < 0 {
			return nil, fmt.Errorf("fault action retime %q: want INDEX=DURATION, e.g. 7=12.5s", f)
		}
		out = append(out, Retime{Index: n, At: at})
	}
	return out, nil
}

// FaultAction is what became of one planned fault action in a run.
type FaultAction struct {
	Index   int
	Name    string
	Hook    bool          // a callback firing (on split, membership, snapshot), not an At
	Planned time.Duration // the time the plan asked for
	At      time.Duration // the time it was due, after edits
	Skipped bool          // skipped by Config.FaultEdits
	Ran     bool          // its function ran
	// Effects lists what it did to the world (crash store 2, isolate 100,
	// heal, ...), in order; empty when it decided to do nothing.
	Effects []string
	// Ends is true when every effect ended a fault (a heal, a restart, a
	// revive): moving such an action earlier shortens a fault window.
	Ends bool
}

// Effective reports whether the action ran and changed something.
func (a FaultAction) Effective() bool { return a.Ran && len(a.Effects) > 0 }

// String renders the action for listings: index, time, name and effects.
func (a FaultAction) String() string {
	s := fmt.Sprintf("#%d %v %s", a.Index, a.At, a.Name)
	switch {
	case a.Skipped:
		s += " (skipped)"
	case !a.Ran:
		s += " (never ran)"
	case len(a.Effects) == 0:
		s += ": did nothing"
	default:
		s += ": " + strings.Join(a.Effects, "; ")
	}
	if a.At != a.Planned {
		s += fmt.Sprintf(" (planned at %v)", a.Planned)
	}
	return s
}

// planAction registers a fault action due at time at and schedules it as
// Config.FaultEdits say. The trace names the event "fault NAME" (as before
// actions were numbered), or "fault skipped NAME". An action due once the
// workload is over does not run (it never ran, in the report).
func (w *World) planAction(at time.Duration, name string, hook bool, fn func()) {
	i := len(w.actions)
	a := FaultAction{Index: i, Name: name, Hook: hook, Planned: at, At: at}
	if t, ok := w.cfg.FaultEdits.retimed(i); ok {
		a.At = t
	}
	if a.At < w.k.now {
		a.At = w.k.now
	}
	if w.cfg.FaultEdits.skips(i) {
		a.Skipped = true
		w.actions = append(w.actions, a)
		w.k.after(a.At-w.k.now, "fault skipped "+name, func() {})
		return
	}
	w.actions = append(w.actions, a)
	w.k.after(a.At-w.k.now, "fault "+name, func() { w.runAction(i, name, fn) })
}

// runActionNow records a hook's fault action and runs it at once, inside
// the current event (a nemesis that must strike before the store that
// called the hook goes on). Config.FaultEdits may skip it, not move it.
func (w *World) runActionNow(name string, fn func()) {
	i := len(w.actions)
	a := FaultAction{Index: i, Name: name, Hook: true, Planned: w.k.now, At: w.k.now}
	if w.cfg.FaultEdits.skips(i) {
		a.Skipped = true
		w.actions = append(w.actions, a)
		w.k.note("fault skipped %s", name)
		return
	}
	w.actions = append(w.actions, a)
	w.k.note("fault %s", name)
	w.runAction(i, name, fn)
}

// runAction runs fault action i, unless the workload is over.
func (w *World) runAction(i int, name string, fn func()) {
	if w.workloadOver {
		// Faults happen in the workload: after it the world is healed
		// for the final reads, convergence and liveness checks (a plan
		// made for a longer workload, or a callback firing late).
		w.k.note("fault %s not run: the workload is over", name)
		return
	}
	prev := w.current
	w.current = i
	w.actions[i].Ran = true
	w.actions[i].Ends = true
	fn()
	if len(w.actions[i].Effects) == 0 {
		w.actions[i].Ends = false
	}
	w.current = prev
}

// faultDid records an effect of the fault action running now (if any): on
// the action, on the linearizability visualization and on the timeline.
// ends says the effect ends a fault (heal, restart, revive).
func (w *World) faultDid(ends bool, format string, args ...any) {
	text := fmt.Sprintf(format, args...)
	label := text
	if w.current >= 0 {
		a := &w.actions[w.current]
		a.Effects = append(a.Effects, text)
		a.Ends = a.Ends && ends
		label = fmt.Sprintf("#%d %s", a.Index, text)
	}
	w.annotate("faults", label)
	w.tl.mark(w.k.now, label, ends)
}
