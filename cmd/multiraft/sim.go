package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"time"

	"github.com/multiraft/multiraft/scenarios"
	"github.com/multiraft/multiraft/sim"
)

// runSim is `multiraft sim`: it runs scenarios over seeds and prints a
// report of each run (or, with --shrink, reduces one failing run). It
// returns the exit code: 0 when every run passed, 1 when one failed, 2
// for bad flags or a run that could not be made.
func runSim(args []string, stdout, stderr io.Writer) int {
	o, err := parseSimOptions(args, stderr)
	if err != nil {
		return errorExit(stderr, err)
	}
	setSimGC()
	if o.list {
		for _, s := range scenarios.All() {
			fmt.Fprintf(stdout, "%-20s %s\n", s.Name, s.Description)
		}
		return 0
	}
	if o.listHooks {
		listHooks(stdout)
		return 0
	}
	if o.outDir != "" {
		if err := os.MkdirAll(o.outDir, 0o755); err != nil {
			return errorExit(stderr, err)
		}
	}
	if o.shrink {
		return runShrink(o, stdout, stderr)
	}
	if o.worker {
		return serveRuns(o, os.Stdin, stdout, stderr)
	}
	if o.cpuProfile != "" {
		stop, err := startCPUProfile(o.cpuProfile)
		if err != nil {
			return errorExit(stderr, err)
		}
		defer stop()
	}
	if o.memProfile != "" {
		stop, err := startMemProfile(o.memProfile, stderr)
		if err != nil {
			return errorExit(stderr, err)
		}
		defer stop()
	}
	prog := newProgress(stderr, isTerminal(stderr), o.jobs.Len(), time.Now)
	// Rows written to the terminal the progress line is on take it away
	// first; rows going to a file or a pipe leave it be.
	rows := stdout
	if isTerminal(stdout) {
		rows = clearing{prog, stdout}
	}
	p := &printer{stdout: rows, stderr: clearing{prog, stderr}, json: o.json, outDir: o.outDir,
		replayArgs: o.overrides.args()}
	if o.coverage {
		p.cov = newCoverage()
	}
	p.header()
	stopped := false
	stalled := false // a run outlived --run-timeout in this process
	keepGoing := func(rep *sim.Report) bool {
		if o.stopOnFailure && !rep.OK {
			stopped = true
			return false
		}
		return true
	}
	completed := func(rep *sim.Report) { prog.completed(rep.OK) }
	if o.workers == 1 {
		files := runFiles{trace: o.tracePath, timeline: o.timelinePath}
		var err error
		stalled, err = runInProcess(o.jobs, files, o.runTimeout, completed, func(rep *sim.Report) bool {
			p.localRun(rep)
			return keepGoing(rep)
		})
		if err != nil {
			return errorExit(stderr, err)
		}
		switch {
		case stalled && (o.tracePath != "" || o.timelinePath != ""):
			fmt.Fprintf(p.stderr, "the run was abandoned: its trace and timeline are not written (replay it with --run-timeout 0)\n")
		case o.timelinePath != "":
			fmt.Fprintf(p.stderr, "timeline: %s\n", o.timelinePath)
		}
	} else {
		var extra []string
		if o.outDir != "" {
			extra = append(extra, "--out", o.outDir)
		}
		extra = append(extra, o.overrides.args()...)
		runInWorkers(o.jobs, o.workers, extra, o.runTimeout, completed, func(rep *sim.Report) bool {
			p.workerRun(rep)
			return keepGoing(rep)
		})
	}
	prog.finish()
	if stopped {
		fmt.Fprintf(stderr, "stopped at the first failure (--stop-on-failure): %d of %d runs reported\n", p.runs, o.jobs.Len())
	} else if stalled && p.runs < o.jobs.Len() {
		fmt.Fprintf(stderr, "stopped at a run that outlived --run-timeout, which cannot be killed in this process (with --workers 2 or more its worker is killed and the sweep goes on): %d of %d runs reported\n", p.runs, o.jobs.Len())
	}
	p.summary()
	if p.failed > 0 {
		return 1
	}
	return 0
}

// errorExit prints err (unless the flag package already did) and returns
// exit code 2: bad flags, or a run that could not be made.
func errorExit(stderr io.Writer, err error) int {
	if !errors.Is(err, errFlagsReported) {
		fmt.Fprintf(stderr, "multiraft sim: %v\n", err)
	}
	return 2
}

// startCPUProfile profiles this process's CPU into path until the returned
// function is called.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// startMemProfile samples one allocation in every 4 KiB from now on (finer
// than the runtime's default, so that small hot allocations show) and
// returns a function that writes the samples to path, by allocation site.
func startMemProfile(path string, stderr io.Writer) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("memory profile: %w", err)
	}
	runtime.MemProfileRate = 4096
	return func() {
		runtime.GC() // the profile counts allocations up to the last collection
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			fmt.Fprintf(stderr, "memory profile: %v\n", err)
		}
		if err := f.Close(); err != nil {
			fmt.Fprintf(stderr, "memory profile: %v\n", err)
		}
	}, nil
}

// setSimGC sets sim.GCPercent and sim.GCMemoryLimit unless the user chose
// with GOGC or GOMEMLIMIT.
func setSimGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(sim.GCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(sim.GCMemoryLimit)
	}
}
