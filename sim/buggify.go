package sim

import (
	"github.com/multiraft/multiraft/core/buggify"
	"github.com/multiraft/multiraft/core/rng"
)

// Buggify configures the fault hooks of the product code (core/buggify) in
// a run. The zero value is the default: on, each hook enabled with
// probability buggify.DefaultEnableProb, drawn from the run's "buggify"
// stream, and no hook fires once the workload is over (the world is healed
// then, and the checks expect it to settle).
type Buggify struct {
	// Off: no hook is enabled, and the run is exactly the run without
	// hooks (coverage is still counted).
	Off bool
	// Force, when not empty, enables exactly these hooks.
	Force []buggify.Point
	// EnableProb overrides the chance that each hook is enabled.
	EnableProb float64
	// Also enables these hooks besides those drawn (not with Off or
	// Force): a scenario whose plan sets up the situation a hook needs.
	Also []buggify.Point
}

// newBuggifyRun draws the run's hooks from a stream of its own, split from
// the seed and the scenario's name (so that a sweep over seeds 1-N tries
// other hooks in every scenario, not the same N sets in all). The run
// notes every hook that fires in the trace.
func newBuggifyRun(cfg Buggify, name string, seed uint64, note func(string)) *buggify.Run {
	opts := buggify.Options{EnableProb: cfg.EnableProb, Force: cfg.Force}
	if cfg.Off {
		opts = buggify.Options{EnableProb: -1}
	}
	run := buggify.NewRun(rng.Stream(seed, "buggify/"+name), opts, note)
	if !cfg.Off && len(cfg.Force) == 0 {
		for _, p := range cfg.Also {
			run.Enable(p)
		}
	}
	return run
}

// HookReport is what a run's fault hooks did: the hooks enabled, and for
// each how often the code passed it while enabled and how often it fired.
type HookReport struct {
	Enabled []string          `json:"enabled"`
	Passes  map[string]uint64 `json:"passes,omitempty"`
	Fired   map[string]uint64 `json:"fired,omitempty"`
}

// hookReport summarizes run's hooks; nil when none was enabled.
func hookReport(run *buggify.Run) *HookReport {
	enabled := run.Enabled()
	if len(enabled) == 0 {
		return nil
	}
	hr := &HookReport{Passes: map[string]uint64{}, Fired: map[string]uint64{}}
	for _, p := range enabled {
		hr.Enabled = append(hr.Enabled, p.String())
		if n := run.Passes(p); n > 0 {
			hr.Passes[p.String()] = n
		}
		if n := run.Fired(p); n > 0 {
			hr.Fired[p.String()] = n
		}
	}
	return hr
}

// coverageReport counts, by name, the coverage events run reached (those
// reached at least once).
func coverageReport(run *buggify.Run) map[string]uint64 {
	out := map[string]uint64{}
	for e := buggify.Event(0); e < buggify.NumEvents; e++ {
		if n := run.Reached(e); n > 0 {
			out[e.String()] = n
		}
	}
	return out
}
