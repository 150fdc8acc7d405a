package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"

	"github.com/multiraft/multiraft/scenarios"
)

// defaultSeeds is the seed range `multiraft sim` runs without --seed(s).
const defaultSeeds = "1-10"

// simOptions is what the flags of `multiraft sim` ask for, validated.
type simOptions struct {
	list      bool   // list the scenarios and exit
	jobs      []job  // the runs, scenario by scenario, seeds in order
	json      bool   // one JSON object per run instead of a table
	tracePath string // write the event trace of the one run here
	outDir    string // write visualizations of failed runs here
	workers   int    // runs at once, each in a worker process; 1 = in this process
}

// job is one run to make: a scenario and a seed.
type job struct {
	s    scenarios.Scenario
	seed uint64
}

// errFlagsReported is a flag error the flag package has already printed,
// with the usage.
var errFlagsReported = errors.New("bad flags")

// parseSimOptions parses and validates the flags of `multiraft sim`. With
// --list it checks nothing else. The number of workers is normalised: at
// least 1, and 1 for a traced run or a single run.
func parseSimOptions(args []string, stderr io.Writer) (simOptions, error) {
	var o simOptions
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scenario := fs.String("scenario", "all", "scenario name, or all")
	seed := fs.String("seed", "", "run one seed")
	seeds := fs.String("seeds", "", "run a seed range A-B (inclusive); default "+defaultSeeds)
	fs.BoolVar(&o.json, "json", false, "print one JSON object per run")
	fs.StringVar(&o.tracePath, "trace", "", "write the event trace of the run to FILE (one run only)")
	fs.StringVar(&o.outDir, "out", "", "write visualizations of failed runs into DIR")
	fs.BoolVar(&o.list, "list", false, "list the scenarios and exit")
	fs.IntVar(&o.workers, "workers", runtime.NumCPU(), "run this many simulations at once, each in its own worker process (1 = in this process)")
	if err := fs.Parse(args); err != nil {
		return simOptions{}, errFlagsReported
	}
	if fs.NArg() > 0 {
		return simOptions{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.list {
		return o, nil
	}
	runs, err := pickScenarios(*scenario)
	if err != nil {
		return simOptions{}, err
	}
	from, to, err := seedRange(*seed, *seeds)
	if err != nil {
		return simOptions{}, err
	}
	if o.tracePath != "" && (from != to || len(runs) != 1) {
		return simOptions{}, errors.New("--trace needs one scenario and one seed")
	}
	for _, s := range runs {
		for sd := from; sd <= to; sd++ {
			o.jobs = append(o.jobs, job{s, sd})
		}
	}
	if o.workers < 1 || o.tracePath != "" || len(o.jobs) == 1 {
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
