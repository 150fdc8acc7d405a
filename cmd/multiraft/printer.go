package main

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/multiraft/multiraft/sim"
)

// printer prints the outcome of runs: a table row or a JSON line each on
// stdout, and for a failed run its violations and how to replay it on
// stderr; at the end a summary per scenario. It counts the runs and the
// failures.
type printer struct {
	stdout, stderr io.Writer
	json           bool     // JSON lines instead of a table
	outDir         string   // where failed runs made here get their visualization
	replayArgs     []string // flags a replay needs besides scenario and seed (overrides)
	runs, failed   int
	scens          []*scenarioStats // in the order scenarios first appeared
	cov            *coverage        // the coverage table of the runs (--coverage); nil: none
}

// scenarioStats is what the summary says of one scenario.
type scenarioStats struct {
	name         string
	runs, failed int
	failedSeeds  []uint64 // the first maxListedSeeds
	speedSum     float64  // simulated per wall time, summed over runs that measured it
	speedRuns    int
}

// maxListedSeeds caps the failing seeds the summary lists per scenario.
const maxListedSeeds = 10

const rowFormat = "%-22s %6v %4s %6v %6v %6v %6v %7s %8v %6v %6v %6v  %s\n"

// header prints the table's header (nothing for JSON lines).
func (p *printer) header() {
	if !p.json {
		fmt.Fprintf(p.stdout, rowFormat, "scenario", "seed", "ok", "ops", "ok", "failed", "ambig", "regions", "elect_ms", "sim_s", "wall_s", "speed", "trace_hash")
	}
}

// workerRun prints a run made in a worker process, which wrote any
// visualization itself.
func (p *printer) workerRun(rep *sim.Report) {
	p.row(rep)
	if !rep.OK {
		p.violations(rep)
		p.replayHint(rep)
	}
}

// localRun prints a run made in this process; a failed run whose history
// is not linearizable also gets its visualization written into outDir.
func (p *printer) localRun(rep *sim.Report) {
	p.row(rep)
	if !rep.OK {
		p.violations(rep)
		p.visualize(rep)
		p.replayHint(rep)
	}
}

// summary prints, for more than one run, a table per scenario (runs,
// failures, the failing seeds, the mean simulation speed), then the count
// of runs and failures: on stdout under the table, on stderr for JSON
// lines (whose stdout stays one report per line).
func (p *printer) summary() {
	out := p.stdout
	if p.json {
		if p.runs <= 1 {
			return
		}
		out = p.stderr
	}
	if p.runs > 1 {
		fmt.Fprintf(out, "\n%-22s %7s %7s %7s  %s\n", "scenario", "runs", "failed", "speed", "failing seeds")
		for _, s := range p.scens {
			speed := "-"
			if s.speedRuns > 0 {
				speed = fmt.Sprintf("%.0fx", s.speedSum/float64(s.speedRuns))
			}
			seeds := make([]string, len(s.failedSeeds))
			for i, sd := range s.failedSeeds {
				seeds[i] = fmt.Sprint(sd)
			}
			list := strings.Join(seeds, " ")
			if list == "" {
				list = "-"
			}
			if s.failed > len(s.failedSeeds) {
				list += fmt.Sprintf(" ... (%d more)", s.failed-len(s.failedSeeds))
			}
			fmt.Fprintf(out, "%-22s %7d %7d %7s  %s\n", s.name, s.runs, s.failed, speed, list)
		}
	}
	fmt.Fprintf(out, "%d runs, %d failed\n", p.runs, p.failed)
	if p.cov != nil {
		p.cov.print(out)
	}
}

// count adds a run to the totals and its scenario's.
func (p *printer) count(rep *sim.Report) {
	p.runs++
	if p.cov != nil {
		p.cov.add(rep)
	}
	var s *scenarioStats
	for _, x := range p.scens {
		if x.name == rep.Scenario {
			s = x
		}
	}
	if s == nil {
		s = &scenarioStats{name: rep.Scenario}
		p.scens = append(p.scens, s)
	}
	s.runs++
	if !rep.OK {
		p.failed++
		s.failed++
		if len(s.failedSeeds) < maxListedSeeds {
			s.failedSeeds = append(s.failedSeeds, rep.Seed)
		}
	}
	if rep.SimWallMs > 0 {
		s.speedSum += rep.SimMs / rep.SimWallMs
		s.speedRuns++
	}
}

// row counts a run and prints its table row or JSON line.
func (p *printer) row(rep *sim.Report) {
	p.count(rep)
	if p.json {
		b, _ := json.Marshal(rep)
		fmt.Fprintln(p.stdout, string(b))
		return
	}
	mark := "ok"
	if !rep.OK {
		mark = "FAIL"
	}
	fmt.Fprintf(p.stdout, rowFormat,
		rep.Scenario, rep.Seed, mark, rep.OpsTotal, rep.OpsOK, rep.OpsFailed, rep.OpsAmbiguous,
		fmt.Sprintf("%d->%d", rep.RegionsInitial, rep.RegionsFinal), fmt.Sprintf("%.0f", rep.LeaderElectMsMax),
		fmt.Sprintf("%.1f", rep.SimMs/1000), fmt.Sprintf("%.2f", rep.WallMs/1000),
		fmt.Sprintf("%.0fx", rep.SimMs/max(rep.SimWallMs, 1)), rep.TraceHash)
}

// violations prints why a run failed.
func (p *printer) violations(rep *sim.Report) {
	fmt.Fprintf(p.stderr, "FAIL %s seed %d: %s\n", rep.Scenario, rep.Seed, rep.Violation)
	for _, v := range rep.Violations[1:] {
		fmt.Fprintf(p.stderr, "  also: %s\n", v)
	}
	if rep.Mix != "" {
		fmt.Fprintf(p.stderr, "  mix: %s\n", rep.Mix)
	}
}

// visualize writes the visualization of a failed linearizability check
// into outDir, when one is given.
func (p *printer) visualize(rep *sim.Report) {
	if p.outDir == "" || !rep.LinearizabilityFailed() {
		return
	}
	path := filepath.Join(p.outDir, fmt.Sprintf("%s-seed%d.html", rep.Scenario, rep.Seed))
	if err := rep.WriteVisualization(path); err != nil {
		fmt.Fprintf(p.stderr, "  visualization: %v\n", err)
	} else {
		fmt.Fprintf(p.stderr, "  visualization: %s\n", path)
	}
}

// replayHint prints the commands that replay a failed run with its trace
// and its picture, and that reduce it. A run that outlived --run-timeout
// is replayed without the limit: the replay is the run to trace and to
// watch to its end.
func (p *printer) replayHint(rep *sim.Report) {
	extra := p.replayArgs
	if strings.Contains(rep.Violation, runTimeoutExceeded) {
		extra = append(slices.Clip(extra), "--run-timeout", "0")
	}
	run := replayCommand(rep.Scenario, rep.Seed, extra)
	fmt.Fprintf(p.stderr, "  replay: %s --trace /tmp/%s-%d.trace --timeline /tmp/%s-%d.html\n",
		run, rep.Scenario, rep.Seed, rep.Scenario, rep.Seed)
	fmt.Fprintf(p.stderr, "  shrink: %s --shrink\n", run)
}

// replayCommand is the command that runs scenario at seed with extra
// flags.
func replayCommand(scenario string, seed uint64, extra []string) string {
	s := fmt.Sprintf("go run ./cmd/multiraft sim --scenario %s --seed %d", scenario, seed)
	if len(extra) > 0 {
		s += " " + strings.Join(extra, " ")
	}
	return s
}
