package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/multiraft/multiraft/core/buggify"
	"github.com/multiraft/multiraft/scenarios"
	"github.com/multiraft/multiraft/sim"
)

// defaultSeeds is the seed range `multiraft sim` runs without --seed(s).
const defaultSeeds = "1-10"

// defaultRunTimeout is --run-timeout's default: beyond the budget of a
// run's linearizability check (10 minutes of wall clock), so it ends only
// a run that is stuck.
const defaultRunTimeout = 15 * time.Minute

// maxRuns bounds the runs one command makes (scenarios × seeds).
const maxRuns = 1 << 40

// simOptions is what the flags of `multiraft sim` ask for, validated.
type simOptions struct {
	list          bool          // list the scenarios and exit
	listHooks     bool          // list the fault hooks and coverage events and exit
	jobs          jobList       // the runs, scenario by scenario, seeds in order
	json          bool          // one JSON object per run instead of a table
	tracePath     string        // write the event trace of the one run here
	timelinePath  string        // write the picture of the one run here
	outDir        string        // write visualizations of failed runs here
	workers       int           // runs at once, in as many worker processes; 1 = in this process
	stopOnFailure bool          // stop at the first failed run (in job order)
	runTimeout    time.Duration // wall-clock limit of one run (0: none)
	shrink        bool          // reduce the one failing run's configuration
	coverage      bool          // print the coverage table of the sweep
	cpuProfile    string        // write a CPU profile of the runs made in this process here
	memProfile    string        // write an allocation profile of the runs made in this process here
	overrides     overrides     // changes to every scenario's configuration
	worker        bool          // serve runs read from stdin (a sweep's worker process)
}

// overrides change the configuration of the scenarios run: they make a
// reduced run (--shrink prints them) exact and replayable.
type overrides struct {
	swarm     bool          // every seed draws its own fault mix and knobs (scenarios.Swarmed)
	clients   int           // 0: the scenario's
	duration  time.Duration // 0: the scenario's
	edits     sim.FaultEdits
	noBuggify bool            // no fault hook in the product code fires
	hooks     []buggify.Point // enable exactly these fault hooks
}

// apply returns the configuration of a run of s at seed: with --swarm,
// s under swarm testing, its mix drawn from the seed; then the other
// overrides, which win over what the seed drew.
func (ov overrides) apply(s scenarios.Scenario, seed uint64) sim.Config {
	if ov.swarm {
		s = scenarios.Swarmed(s)
	}
	cfg := s.Config.Resolve(seed)
	if ov.clients > 0 {
		cfg.Clients = ov.clients
	}
	if ov.duration > 0 {
		cfg.Duration = ov.duration
	}
	if !ov.edits.Empty() {
		cfg.FaultEdits = ov.edits
	}
	if ov.noBuggify {
		cfg.Buggify = sim.Buggify{Off: true}
	} else if len(ov.hooks) > 0 {
		cfg.Buggify = sim.Buggify{Force: ov.hooks}
	}
	return cfg
}

// args renders the overrides as flags, for worker processes and replay
// commands.
func (ov overrides) args() []string {
	var a []string
	if ov.swarm {
		a = append(a, "--swarm")
	}
	if ov.clients > 0 {
		a = append(a, "--clients", strconv.Itoa(ov.clients))
	}
	if ov.duration > 0 {
		a = append(a, "--duration", ov.duration.String())
	}
	e := ov.edits.Normalized()
	if len(e.Skip) > 0 {
		a = append(a, "--faults-skip", e.SkipFlag())
	}
	if len(e.Retime) > 0 {
		a = append(a, "--faults-at", e.RetimeFlag())
	}
	if ov.noBuggify {
		a = append(a, "--no-buggify")
	} else if len(ov.hooks) > 0 {
		a = append(a, "--hooks", hookNames(ov.hooks))
	}
	return a
}

// hookNames renders hooks as the --hooks flag takes them.
func hookNames(hooks []buggify.Point) string {
	names := make([]string, len(hooks))
	for i, h := range hooks {
		names[i] = h.String()
	}
	return strings.Join(names, ",")
}

// parseHooks parses --hooks: hook names, comma separated, or "all".
func parseHooks(s string) ([]buggify.Point, error) {
	if s == "" {
		return nil, nil
	}
	if s == "all" {
		var all []buggify.Point
		for p := buggify.Point(0); p < buggify.NumPoints; p++ {
			all = append(all, p)
		}
		return all, nil
	}
	var out []buggify.Point
	for _, name := range strings.Split(s, ",") {
		p, ok := buggify.PointByName(strings.TrimSpace(name))
		if !ok {
			return nil, fmt.Errorf("unknown hook %q (multiraft sim --list-hooks lists them)", name)
		}
		out = append(out, p)
	}
	return out, nil
}

// overridesOf are the overrides that turn base (resolved) into cfg, on
// top of swarm.
func overridesOf(swarm bool, base, cfg sim.Config) overrides {
	ov := overrides{swarm: swarm}
	if cfg.Clients != base.Clients {
		ov.clients = cfg.Clients
	}
	if cfg.Duration != base.Duration {
		ov.duration = cfg.Duration
	}
	ov.edits = cfg.FaultEdits.Normalized()
	// The hooks: only where cfg's differ from base's (the scenario's own).
	if !slices.Equal(cfg.Buggify.Force, base.Buggify.Force) || cfg.Buggify.Off != base.Buggify.Off {
		ov.noBuggify = cfg.Buggify.Off
		if !cfg.Buggify.Off {
			ov.hooks = cfg.Buggify.Force
		}
	}
	return ov
}

// jobList is the runs of a command: every scenario over the seed range,
// scenario by scenario, with the overrides applied. It is computed, not
// stored, so that a sweep over millions of seeds takes no memory.
type jobList struct {
	scens    []scenarios.Scenario // as registered
	from, to uint64
	ov       overrides
}

// job is one run to make: a scenario and a seed.
type job struct {
	s    scenarios.Scenario
	seed uint64
}

// Len is the number of runs.
func (l jobList) Len() int {
	if len(l.scens) == 0 {
		return 0
	}
	return len(l.scens) * int(l.to-l.from+1)
}

// At is run i.
func (l jobList) At(i int) job {
	per := int(l.to - l.from + 1)
	s := l.scens[i/per]
	seed := l.from + uint64(i%per)
	s.Config = l.ov.apply(s, seed)
	return job{s, seed}
}

// errFlagsReported is a flag error the flag package has already printed,
// with the usage.
var errFlagsReported = errors.New("bad flags")

// parseSimOptions parses and validates the flags of `multiraft sim`. With
// --list it checks nothing else. The number of workers is normalised: at
// least 1, and 1 for a traced, pictured or shrunk run or a single run.
func parseSimOptions(args []string, stderr io.Writer) (simOptions, error) {
	var o simOptions
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scenario := fs.String("scenario", "all", "scenario name, or all")
	seed := fs.String("seed", "", "run one seed")
	seeds := fs.String("seeds", "", "run a seed range A-B (inclusive); default "+defaultSeeds)
	fs.BoolVar(&o.json, "json", false, "print one JSON object per run")
	fs.StringVar(&o.tracePath, "trace", "", "write the event trace of the run to FILE (one run only)")
	fs.StringVar(&o.timelinePath, "timeline", "", "write a picture of the run (one self-contained HTML page) to FILE (one run only)")
	fs.StringVar(&o.outDir, "out", "", "write visualizations of failed runs into DIR (with --shrink: the reduced run's trace and pages)")
	fs.BoolVar(&o.list, "list", false, "list the scenarios and exit")
	fs.IntVar(&o.workers, "workers", runtime.NumCPU(), "run this many simulations at once, in as many worker processes (1 = in this process)")
	fs.BoolVar(&o.stopOnFailure, "stop-on-failure", false, "stop at the first failed run")
	fs.DurationVar(&o.runTimeout, "run-timeout", defaultRunTimeout, "fail a run still going after this much wall-clock time (0: no limit): its worker process is killed and replaced, and the sweep goes on; with --workers 1 the command stops there (not with --shrink)")
	fs.BoolVar(&o.shrink, "shrink", false, "reduce the failing run (one scenario, one seed): fewer clients, a shorter workload, fewer and shorter faults; print the reduced run's replay command")
	fs.BoolVar(&o.overrides.swarm, "swarm", false, "swarm testing: every seed draws its own fault mix, network, knobs and client habits on the scenario's world (the mix is in the report)")
	fs.IntVar(&o.overrides.clients, "clients", 0, "run this many clients instead of the scenario's")
	fs.DurationVar(&o.overrides.duration, "duration", 0, "run the workload this long instead of the scenario's")
	skip := fs.String("faults-skip", "", "skip the fault plan's actions with these indices (comma separated)")
	retime := fs.String("faults-at", "", "move fault actions: INDEX=TIME pairs, comma separated (7=12.5s)")
	fs.BoolVar(&o.overrides.noBuggify, "no-buggify", false, "turn the product code's fault hooks off (by default each is enabled in a run with probability 0.25)")
	hooks := fs.String("hooks", "", "enable exactly these fault hooks in every run (names comma separated, or all)")
	fs.BoolVar(&o.listHooks, "list-hooks", false, "list the fault hooks and the coverage events and exit")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the runs to FILE (with --workers 1: worker processes are not profiled)")
	fs.StringVar(&o.memProfile, "memprofile", "", "write a profile of the memory the runs allocate to FILE (with --workers 1, as --cpuprofile)")
	fs.BoolVar(&o.coverage, "coverage", false, "print, after the runs, how many runs reached each coverage event and fired each fault hook")
	fs.BoolVar(&o.worker, "worker", false, "internal: read runs from stdin (a line \"SCENARIO SEED\" each) and print each one's JSON report; a sweep's worker processes run this")
	if err := fs.Parse(args); err != nil {
		return simOptions{}, errFlagsReported
	}
	if fs.NArg() > 0 {
		return simOptions{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.list || o.listHooks {
		return o, nil
	}
	var err error
	if o.overrides.hooks, err = parseHooks(*hooks); err != nil {
		return simOptions{}, fmt.Errorf("--hooks: %v", err)
	}
	if o.overrides.noBuggify && len(o.overrides.hooks) > 0 {
		return simOptions{}, errors.New("give --no-buggify or --hooks, not both")
	}
	if o.overrides.edits.Skip, err = sim.ParseSkipFlag(*skip); err != nil {
		return simOptions{}, fmt.Errorf("--faults-skip: %v", err)
	}
	if o.overrides.edits.Retime, err = sim.ParseRetimeFlag(*retime); err != nil {
		return simOptions{}, fmt.Errorf("--faults-at: %v", err)
	}
	if o.overrides.clients < 0 || o.overrides.duration < 0 {
		return simOptions{}, errors.New("--clients and --duration must not be negative")
	}
	if o.runTimeout < 0 {
		return simOptions{}, fmt.Errorf("--run-timeout %v: must not be negative (0: no limit)", o.runTimeout)
	}
	if o.worker {
		return o, nil // the runs come on stdin
	}
	runs, err := pickScenarios(*scenario)
	if err != nil {
		return simOptions{}, err
	}
	from, to, err := seedRange(*seed, *seeds)
	if err != nil {
		return simOptions{}, err
	}
	one := from == to && len(runs) == 1
	switch {
	case o.tracePath != "" && !one:
		return simOptions{}, errors.New("--trace needs one scenario and one seed")
	case o.timelinePath != "" && !one:
		return simOptions{}, errors.New("--timeline needs one scenario and one seed")
	case o.shrink && !one:
		return simOptions{}, errors.New("--shrink needs one scenario and one seed")
	case (to-from+1)*uint64(len(runs)) > maxRuns || to-from+1 == 0:
		return simOptions{}, fmt.Errorf("--seeds %d-%d: too many runs", from, to)
	}
	o.jobs = jobList{scens: runs, from: from, to: to, ov: o.overrides}
	if o.workers < 1 || o.tracePath != "" || o.timelinePath != "" || o.shrink || o.jobs.Len() == 1 {
		o.workers = 1
	}
	return o, nil
}

// pickScenarios returns the scenario named by --scenario, or all of them.
func pickScenarios(name string) ([]scenarios.Scenario, error) {
	if name == "all" {
		return scenarios.All(), nil
	}
	s, err := scenarios.Get(name)
	if err != nil {
		return nil, err
	}
	return []scenarios.Scenario{s}, nil
}

// seedRange parses --seed N or --seeds A-B.
func seedRange(one, rng string) (uint64, uint64, error) {
	if one != "" && rng != "" {
		return 0, 0, errors.New("give --seed or --seeds, not both")
	}
	if one != "" {
		n, err := strconv.ParseUint(one, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("--seed %q: not a number", one)
		}
		return n, n, nil
	}
	if rng == "" {
		rng = defaultSeeds
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		n, err := strconv.ParseUint(rng, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("--seeds %q: want A-B", rng)
		}
		return n, n, nil
	}
	from, err1 := strconv.ParseUint(a, 10, 64)
	to, err2 := strconv.ParseUint(b, 10, 64)
	if err1 != nil || err2 != nil || to < from {
		return 0, 0, fmt.Errorf("--seeds %q: want A-B with A <= B", rng)
	}
	return from, to, nil
}
