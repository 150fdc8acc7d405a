package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/multiraft/multiraft/scenarios"
)

// runSim is `multiraft sim`: it runs scenarios over seeds and prints a
// report of each run. It returns the exit code: 0 when every run passed,
// 1 when one failed, 2 for bad flags or a run that could not be made.
func runSim(args []string, stdout, stderr io.Writer) int {
	o, err := parseSimOptions(args, stderr)
	if err != nil {
		return errorExit(stderr, err)
	}
	if o.list {
		for _, s := range scenarios.All() {
			fmt.Fprintf(stdout, "%-20s %s\n", s.Name, s.Description)
		}
		return 0
	}
	if o.outDir != "" {
		if err := os.MkdirAll(o.outDir, 0o755); err != nil {
			return errorExit(stderr, err)
		}
	}
	p := &printer{stdout: stdout, stderr: stderr, json: o.json, outDir: o.outDir}
	p.header()
	if o.workers == 1 {
		if err := runInProcess(o.jobs, o.tracePath, p.localRun); err != nil {
			return errorExit(stderr, err)
		}
	} else {
		runInWorkers(o.jobs, o.workers, o.outDir, p.workerRun)
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
