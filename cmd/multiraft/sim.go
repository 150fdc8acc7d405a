package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/multiraft/multiraft/scenarios"
	"github.com/multiraft/multiraft/sim"
)

// defaultSeeds is the seed range `multiraft sim` runs without --seed(s).
const defaultSeeds = "1-10"

func runSim(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scenario := fs.String("scenario", "all", "scenario name, or all")
	seed := fs.String("seed", "", "run one seed")
	seeds := fs.String("seeds", "", "run a seed range A-B (inclusive); default "+defaultSeeds)
	asJSON := fs.Bool("json", false, "print one JSON object per run")
	tracePath := fs.String("trace", "", "write the event trace of the run to FILE (one run only)")
	outDir := fs.String("out", "", "write visualizations of failed runs into DIR")
	list := fs.Bool("list", false, "list the scenarios and exit")
	workers := fs.Int("workers", runtime.NumCPU(), "run this many simulations at once, each in its own worker process (1 = in this process)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "multiraft sim: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *list {
		for _, s := range scenarios.All() {
			fmt.Fprintf(stdout, "%-20s %s\n", s.Name, s.Description)
		}
		return 0
	}
	var runs []scenarios.Scenario
	if *scenario == "all" {
		runs = scenarios.All()
	} else {
		s, err := scenarios.Get(*scenario)
		if err != nil {
			fmt.Fprintf(stderr, "multiraft sim: %v\n", err)
			return 2
		}
		runs = []scenarios.Scenario{s}
	}
	from, to, err := seedRange(*seed, *seeds)
	if err != nil {
		fmt.Fprintf(stderr, "multiraft sim: %v\n", err)
		return 2
	}
	if *tracePath != "" && (from != to || len(runs) != 1) {
		fmt.Fprintln(stderr, "multiraft sim: --trace needs one scenario and one seed")
		return 2
	}
	if *outDir != "" {
		if err := os.MkdirAll(*outDir, 0o755); err != nil {
			fmt.Fprintf(stderr, "multiraft sim: %v\n", err)
			return 2
		}
	}

	type job struct {
		s    scenarios.Scenario
		seed uint64
	}
	var jobs []job
	for _, s := range runs {
		for sd := from; sd <= to; sd++ {
			jobs = append(jobs, job{s, sd})
		}
	}
	if *workers < 1 {
		*workers = 1
	}
	if *tracePath != "" || len(jobs) == 1 {
		*workers = 1
	}

	const rowFormat = "%-19s %6v %4s %6v %6v %6v %6v %7s %8v %6v %6v %6v  %s\n"
	if !*asJSON {
		fmt.Fprintf(stdout, rowFormat, "scenario", "seed", "ok", "ops", "ok", "failed", "ambig", "regions", "elect_ms", "sim_s", "wall_s", "speed", "trace_hash")
	}
	report := func(rep *sim.Report, local bool) {
		if *asJSON {
			b, _ := json.Marshal(rep)
			fmt.Fprintln(stdout, string(b))
		} else {
			mark := "ok"
			if !rep.OK {
				mark = "FAIL"
			}
			fmt.Fprintf(stdout, rowFormat,
				rep.Scenario, rep.Seed, mark, rep.OpsTotal, rep.OpsOK, rep.OpsFailed, rep.OpsAmbiguous,
				fmt.Sprintf("%d->%d", rep.RegionsInitial, rep.RegionsFinal), fmt.Sprintf("%.0f", rep.LeaderElectMsMax),
				fmt.Sprintf("%.1f", rep.SimMs/1000), fmt.Sprintf("%.2f", rep.WallMs/1000),
				fmt.Sprintf("%.0fx", rep.SimMs/max(rep.SimWallMs, 1)), rep.TraceHash)
		}
		if rep.OK {
			return
		}
		fmt.Fprintf(stderr, "FAIL %s seed %d: %s\n", rep.Scenario, rep.Seed, rep.Violation)
		for _, v := range rep.Violations[1:] {
			fmt.Fprintf(stderr, "  also: %s\n", v)
		}
		if *outDir != "" && local && rep.LinearizabilityFailed() {
			path := filepath.Join(*outDir, fmt.Sprintf("%s-seed%d.html", rep.Scenario, rep.Seed))
			if err := rep.WriteVisualization(path); err != nil {
				fmt.Fprintf(stderr, "  visualization: %v\n", err)
			} else {
				fmt.Fprintf(stderr, "  visualization: %s\n", path)
			}
		}
		fmt.Fprintf(stderr, "  replay: go run ./cmd/multiraft sim --scenario %s --seed %d --trace /tmp/%s-%d.trace\n",
			rep.Scenario, rep.Seed, rep.Scenario, rep.Seed)
	}

	failed := 0
	count := func(rep *sim.Report) {
		if !rep.OK {
			failed++
		}
	}
	if *workers == 1 {
		for _, j := range jobs {
			rep, err := runLocal(j.s, j.seed, *tracePath)
			if err != nil {
				fmt.Fprintf(stderr, "multiraft sim: %v\n", err)
				return 2
			}
			count(rep)
			report(rep, true)
		}
	} else {
		// One simulation per process at a time (a run replaces raft's
		// random source): a sweep fans out to worker processes.
		results := make([]chan *sim.Report, len(jobs))
		for i := range results {
			results[i] = make(chan *sim.Report, 1)
		}
		next := make(chan int)
		var wg sync.WaitGroup
		for w := 0; w < *workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					results[i] <- runWorker(jobs[i].s.Name, jobs[i].seed, *outDir, stderr)
				}
			}()
		}
		go func() {
			for i := range jobs {
				next <- i
			}
			close(next)
		}()
		for i := range jobs {
			rep := <-results[i]
			count(rep)
			report(rep, false)
		}
		wg.Wait()
	}
	if !*asJSON {
		fmt.Fprintf(stdout, "%d runs, %d failed\n", len(jobs), failed)
	}
	if failed > 0 {
		return 1
	}
	return 0
}

// runLocal runs one simulation in this process.
func runLocal(s scenarios.Scenario, seed uint64, tracePath string) (*sim.Report, error) {
	var trace io.Writer
	var buffered *bufio.Writer
	if tracePath != "" {
		f, err := os.Create(tracePath)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		buffered = bufio.NewWriterSize(f, 1<<20)
		trace = buffered
	}
	start := time.Now()
	rep := sim.RunTimed(s.Config, seed, trace, time.Now)
	rep.WallMs = float64(time.Since(start).Microseconds()) / 1000
	if buffered != nil {
		if err := buffered.Flush(); err != nil {
			return nil, fmt.Errorf("write trace: %w", err)
		}
	}
	return rep, nil
}

// runWorker runs one simulation in a child process and reads its report.
// A worker that dies or prints no report counts as a failed run.
func runWorker(name string, seed uint64, outDir string, stderr io.Writer) *sim.Report {
	self, err := os.Executable()
	if err != nil {
		return &sim.Report{Scenario: name, Seed: seed, Violation: fmt.Sprintf("worker: %v", err), Violations: []string{"worker failed"}}
	}
	args := []string{"sim", "--scenario", name, "--seed", strconv.FormatUint(seed, 10), "--json"}
	if outDir != "" {
		args = append(args, "--out", outDir)
	}
	cmd := exec.Command(self, args...)
	var out strings.Builder
	cmd.Stdout = &out
	runErr := cmd.Run() // exit status 1 just means the run failed
	rep := &sim.Report{}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out.String())), rep); err != nil {
		msg := fmt.Sprintf("worker for %s seed %d printed no report (%v; exit: %v)", name, seed, err, runErr)
		return &sim.Report{Scenario: name, Seed: seed, Violation: msg, Violations: []string{msg}}
	}
	return rep
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
