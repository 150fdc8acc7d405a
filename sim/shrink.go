package sim

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Shrinking: given a failing (Config, seed), look for a smaller
// configuration that still fails the same way — fewer clients, a shorter
// workload, fewer fault actions, shorter fault windows — so that the run
// is easier to read. Every candidate is a plain Config (Clients, Duration,
// FaultEdits), so the result replays exactly.
//
// The fault plan keeps its random draws: a skipped action does not draw
// what it would have drawn, so the actions after it may do something else
// than in the original run. Shrinking only keeps a change when the run it
// gives still fails, so this costs attempts, never correctness; the
// reduced run is what it is, and replays.

// ShrinkOptions tune Shrink.
type ShrinkOptions struct {
	// MaxRuns bounds the simulations Shrink makes, the original included
	// (default 200).
	MaxRuns int
	// Same decides whether a candidate's failure is the original's
	// (default SameFailure).
	Same func(original, candidate *Report) bool
	// Log, when set, is told every attempt and its outcome.
	Log func(line string)
}

// ShrinkResult is what Shrink found.
type ShrinkResult struct {
	Config   Config  // the reduced configuration
	Original *Report // the run as given
	Reduced  *Report // the reduced run (the original when nothing helped)
	Runs     int     // simulations made
	Kept     []string
}

// Shrink reduces a failing run (see above). It fails when the run passes.
func Shrink(cfg Config, seed uint64, opts ShrinkOptions) (*ShrinkResult, error) {
	s := &shrinker{seed: seed, opts: opts, tried: map[string]bool{}}
	if s.opts.MaxRuns <= 0 {
		s.opts.MaxRuns = 200
	}
	if s.opts.Same == nil {
		s.opts.Same = SameFailure
	}
	cfg = cfg.Resolve(seed)
	cfg.FaultEdits = cfg.FaultEdits.Normalized()
	s.tried[shrinkKey(cfg)] = true
	s.res.Original = s.run(cfg)
	if s.res.Original.OK {
		return nil, errors.New("sim: shrink: the run passes; there is nothing to reduce")
	}
	s.log("original run fails: %s", firstLine(s.res.Original.Violation))
	s.res.Config, s.res.Reduced = cfg, s.res.Original
	s.clients()
	s.duration()
	for pass := 0; pass < 3; pass++ {
		before := len(s.res.Kept)
		s.dropActions()
		s.shortenWindows()
		s.duration()
		if len(s.res.Kept) == before {
			break
		}
	}
	s.res.Config.FaultEdits = s.res.Config.FaultEdits.Normalized()
	s.res.Runs = s.runs
	return &s.res, nil
}

type shrinker struct {
	seed  uint64
	opts  ShrinkOptions
	res   ShrinkResult
	runs  int
	tried map[string]bool // candidates already run (by shrinkKey)
}

// shrinkKey names what a candidate changes.
func shrinkKey(c Config) string {
	e := c.FaultEdits.Normalized()
	return fmt.Sprintf("%d|%v|%s|%s", c.Clients, c.Duration, e.SkipFlag(), e.RetimeFlag())
}

func (s *shrinker) log(format string, args ...any) {
	if s.opts.Log != nil {
		s.opts.Log(fmt.Sprintf(format, args...))
	}
}

func (s *shrinker) run(cfg Config) *Report {
	s.runs++
	return Run(cfg, s.seed, nil)
}

// try runs cand and keeps it when it fails as the original did. A
// candidate already tried is not run again (it did not help then).
func (s *shrinker) try(cand Config, what string) bool {
	key := shrinkKey(cand)
	if s.runs >= s.opts.MaxRuns || s.tried[key] {
		return false
	}
	s.tried[key] = true
	rep := s.run(cand)
	keep := !rep.OK && s.opts.Same(s.res.Original, rep)
	switch {
	case keep:
		s.log("%s: still fails (kept)", what)
		s.res.Config, s.res.Reduced = cand, rep
		s.res.Kept = append(s.res.Kept, what)
	case rep.OK:
		s.log("%s: passes", what)
	default:
		s.log("%s: fails differently (%s)", what, firstLine(rep.Violation))
	}
	return keep
}

// clients tries 1, 2, ... clients, fewer than now; the first that fails
// is kept.
func (s *shrinker) clients() {
	for n := 1; n < s.res.Config.Clients; n++ {
		c := s.res.Config
		c.Clients = n
		if s.try(c, fmt.Sprintf("clients %d", n)) {
			return
		}
	}
}

// duration searches, in whole seconds, for the shortest workload that
// still fails and still holds the last fault that starts something (so
// that no fault moves past the workload into the settle phase).
func (s *shrinker) duration() {
	lo, hi := time.Duration(0), s.res.Config.Duration
	for _, a := range s.res.Reduced.FaultActions() {
		if a.Effective() && !a.Ends {
			lo = max(lo, a.At.Truncate(time.Second))
		}
	}
	for hi-lo > time.Second && s.runs < s.opts.MaxRuns {
		mid := ((lo + hi) / 2).Truncate(time.Second)
		if mid <= lo {
			mid = lo + time.Second
		}
		c := s.res.Config
		c.Duration = mid
		if s.try(c, fmt.Sprintf("workload of %v", mid)) {
			hi = mid
		} else {
			lo = mid
		}
	}
}

// candidates are the actions of the current reduced run that did
// something and are not skipped.
func (s *shrinker) candidates() []int {
	var out []int
	for _, a := range s.res.Reduced.FaultActions() {
		if a.Effective() && !a.Skipped {
			out = append(out, a.Index)
		}
	}
	return out
}

// dropActions skips effective actions, in chunks first (halves, quarters,
// ... as in delta debugging) and then one by one.
func (s *shrinker) dropActions() {
	cands := s.candidates()
	n := 2
	for len(cands) > 0 && s.runs < s.opts.MaxRuns {
		n = min(n, len(cands))
		dropped := false
		for _, chunk := range chunks(cands, n) {
			c := s.res.Config
			c.FaultEdits = FaultEdits{Skip: append(slices.Clone(c.FaultEdits.Skip), chunk...), Retime: c.FaultEdits.Retime}.Normalized()
			if s.try(c, "skip actions "+FaultEdits{Skip: chunk}.SkipFlag()) {
				dropped = true
				break
			}
		}
		if dropped {
			cands = s.candidates()
			n = max(n-1, 2)
			continue
		}
		if n >= len(cands) {
			return
		}
		n = min(2*n, len(cands))
	}
}

// chunks cuts xs into n nearly equal runs.
func chunks(xs []int, n int) [][]int {
	var out [][]int
	for i := 0; i < n; i++ {
		lo, hi := i*len(xs)/n, (i+1)*len(xs)/n
		if hi > lo {
			out = append(out, xs[lo:hi])
		}
	}
	return out
}

// shortenWindows moves every action that ends faults (a heal, a restart)
// closer to the last fault that started before it, halving the window
// while the run still fails.
func (s *shrinker) shortenWindows() {
	for _, a := range s.res.Reduced.FaultActions() {
		if !a.Effective() || !a.Ends {
			continue
		}
		start := s.windowStart(a)
		for step := 0; step < 4 && s.runs < s.opts.MaxRuns; step++ {
			at := (start + (a.At-start)/2).Truncate(time.Millisecond)
			if at <= start || a.At-at < 10*time.Millisecond {
				break
			}
			c := s.res.Config
			c.FaultEdits = FaultEdits{Skip: c.FaultEdits.Skip, Retime: append(slices.Clone(c.FaultEdits.Retime), Retime{Index: a.Index, At: at})}.Normalized()
			if !s.try(c, fmt.Sprintf("action #%d (%s) at %v instead of %v", a.Index, a.Name, at, a.At)) {
				break
			}
			a.At = at
		}
	}
}

// windowStart is when the fault an ending action ends began: the last
// effective action before it that starts a fault (0 if none).
func (s *shrinker) windowStart(end FaultAction) time.Duration {
	var start time.Duration
	for _, a := range s.res.Reduced.FaultActions() {
		if a.Effective() && !a.Ends && a.Index != end.Index && a.At <= end.At && a.At > start {
			start = a.At
		}
	}
	return start
}

// SameFailure reports whether candidate fails with a violation of the
// kind the original failed with first: their messages agree up to the
// first ": " once numbers and quoted strings are masked ("not
// linearizable", "region N ends with N voters among N peers, want N").
func SameFailure(original, candidate *Report) bool {
	if original.OK || candidate.OK || len(original.Violations) == 0 {
		return false
	}
	want := FailureKind(original.Violations[0])
	for _, v := range candidate.Violations {
		if FailureKind(v) == want {
			return true
		}
	}
	return false
}

// FailureKind is a violation message reduced to its kind: the first line
// up to its first ": ", with quoted strings and numbers masked.
func FailureKind(v string) string {
	v = firstLine(v)
	if i := strings.Index(v, ": "); i >= 0 {
		v = v[:i]
	}
	var b strings.Builder
	inQuote, inNum := false, false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case inQuote:
			if c == '\\' {
				i++
			} else if c == '"' {
				inQuote = false
			}
			continue
		case c == '"':
			inQuote = true
			b.WriteString("Q")
			inNum = false
			continue
		case c >= '0' && c <= '9':
			if !inNum {
				b.WriteString("N")
			}
			inNum = true
			continue
		}
		inNum = false
		b.WriteByte(c)
	}
	return b.String()
}
