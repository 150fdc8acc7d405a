package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/multiraft/multiraft/scenarios"
	"github.com/multiraft/multiraft/sim"
)

// runShrink is `multiraft sim --shrink`: it reduces one failing run (see
// sim.Shrink), prints each attempt on stderr, then the reduced run's
// report and the exact command that replays it, and writes the reduced
// run's trace, its picture and porcupine's view of its history (the
// fault actions marked) into --out DIR (default: the temporary
// directory). Exit code: 1 when a failing run was reduced (the failure
// stands), 0 when the run passes (nothing to reduce), 2 when it could not
// be made.
func runShrink(o simOptions, stdout, stderr io.Writer) int {
	j := o.jobs.At(0)
	base := o.jobs.scens[0]
	if o.overrides.swarm {
		base = scenarios.Swarmed(base)
	}
	base.Config = base.Config.Resolve(j.seed)
	res, err := sim.Shrink(j.s.Config, j.seed, sim.ShrinkOptions{
		Log: func(line string) { fmt.Fprintf(stderr, "shrink: %s\n", line) },
	})
	if err != nil {
		fmt.Fprintf(stderr, "shrink: %s seed %d passes; nothing to reduce\n", j.s.Name, j.seed)
		return 0
	}
	dir := o.outDir
	if dir == "" {
		dir = os.TempDir()
	}
	stem := filepath.Join(dir, fmt.Sprintf("%s-seed%d-min", j.s.Name, j.seed))
	files := runFiles{trace: stem + ".trace", timeline: stem + "-timeline.html"}
	reduced := scenarios.Scenario{Name: j.s.Name, Config: res.Config}
	rep, err := runLocal(reduced, j.seed, files)
	if err != nil {
		return errorExit(stderr, err)
	}
	if rep.TraceHash != res.Reduced.TraceHash {
		fmt.Fprintf(stderr, "shrink: the reduced run did not replay (hash %s, then %s): a determinism bug\n", res.Reduced.TraceHash, rep.TraceHash)
		return 2
	}
	args := overridesOf(o.overrides.swarm, base.Config, res.Config).args()
	p := &printer{stdout: stdout, stderr: stderr, json: o.json, replayArgs: args}
	p.header()
	p.row(rep)
	p.violations(rep)
	orig := res.Original
	fmt.Fprintf(stderr, "shrink: %d runs; clients %d -> %d, workload %v -> %v, fault actions that did something %d -> %d\n",
		res.Runs, j.s.Config.Clients, res.Config.Clients, j.s.Config.Duration, res.Config.Duration,
		effective(orig), effective(rep))
	for _, a := range rep.FaultActions() {
		if a.Effective() {
			fmt.Fprintf(stderr, "  kept: %s\n", a)
		}
	}
	fmt.Fprintf(stderr, "reduced run: %s\n", replayCommand(j.s.Name, j.seed, args))
	fmt.Fprintf(stderr, "  trace:    %s\n  timeline: %s\n", files.trace, files.timeline)
	viz := stem + "-porcupine.html"
	if err := rep.WriteVisualization(viz); err != nil {
		fmt.Fprintf(stderr, "  porcupine: %v\n", err)
	} else {
		fmt.Fprintf(stderr, "  porcupine: %s\n", viz)
	}
	return 1
}

// effective counts a run's fault actions that did something.
func effective(rep *sim.Report) int {
	n := 0
	for _, a := range rep.FaultActions() {
		if a.Effective() {
			n++
		}
	}
	return n
}
