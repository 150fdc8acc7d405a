package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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

	const rowFormat = "%-18s %6v %4s %6v %6v %6v %6v %7s %8v %6v %6v %6v  %s\n"
	if !*asJSON {
		fmt.Fprintf(stdout, rowFormat, "scenario", "seed", "ok", "ops", "ok", "failed", "ambig", "regions", "elect_ms", "sim_s", "wall_s", "speed", "trace_hash")
	}
	failed := 0
	total := 0
	for _, s := range runs {
		for sd := from; sd <= to; sd++ {
			total++
			var trace io.Writer
			var traceFile *os.File
			var buffered *bufio.Writer
			if *tracePath != "" {
				traceFile, err = os.Create(*tracePath)
				if err != nil {
					fmt.Fprintf(stderr, "multiraft sim: %v\n", err)
					return 2
				}
				buffered = bufio.NewWriterSize(traceFile, 1<<20)
				trace = buffered
			}
			start := time.Now()
			rep := sim.RunTimed(s.Config, sd, trace, time.Now)
			rep.WallMs = float64(time.Since(start).Microseconds()) / 1000
			if buffered != nil {
				buffered.Flush()
				traceFile.Close()
			}
			if !rep.OK {
				failed++
			}
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
					fmt.Sprintf("%.0fx", rep.SimMs/max(rep.WallMs, 1)), rep.TraceHash)
			}
			if !rep.OK {
				fmt.Fprintf(stderr, "FAIL %s seed %d: %s\n", rep.Scenario, rep.Seed, rep.Violation)
				for _, v := range rep.Violations[1:] {
					fmt.Fprintf(stderr, "  also: %s\n", v)
				}
				if *outDir != "" && rep.LinearizabilityFailed() {
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
		}
	}
	if !*asJSON {
		fmt.Fprintf(stdout, "%d runs, %d failed\n", total, failed)
	}
	if failed > 0 {
		return 1
	}
	return 0
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
