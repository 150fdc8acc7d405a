package main

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"

	"github.com/multiraft/multiraft/sim"
)

// printer prints the outcome of runs: a table row or a JSON line each on
// stdout, and for a failed run its violations and how to replay it on
// stderr. It counts the runs and the failures.
type printer struct {
	stdout, stderr io.Writer
	json           bool   // JSON lines instead of a table
	outDir         string // where failed runs made here get their visualization
	runs, failed   int
}

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

// summary prints the count of runs and failures under the table (nothing
// for JSON lines).
func (p *printer) summary() {
	if !p.json {
		fmt.Fprintf(p.stdout, "%d runs, %d failed\n", p.runs, p.failed)
	}
}

// row counts a run and prints its table row or JSON line.
func (p *printer) row(rep *sim.Report) {
	p.runs++
	if !rep.OK {
		p.failed++
	}
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

// replayHint prints the command that replays a failed run with its trace.
func (p *printer) replayHint(rep *sim.Report) {
	fmt.Fprintf(p.stderr, "  replay: go run ./cmd/multiraft sim --scenario %s --seed %d --trace /tmp/%s-%d.trace\n",
		rep.Scenario, rep.Seed, rep.Scenario, rep.Seed)
}
