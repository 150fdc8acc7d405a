package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/multiraft/multiraft/scenarios"
	"github.com/multiraft/multiraft/sim"
)

// runInProcess makes the runs one after another in this process and hands
// each report to done. It stops at the first run it cannot make (its
// trace cannot be written).
func runInProcess(jobs []job, tracePath string, done func(*sim.Report)) error {
	for _, j := range jobs {
		rep, err := runLocal(j.s, j.seed, tracePath)
		if err != nil {
			return err
		}
		done(rep)
	}
	return nil
}

// runInWorkers makes each run in a worker process, workers at a time, and
// hands the reports to done in the order of jobs. One simulation runs per
// process at a time (a run replaces raft's random source), so a sweep fans
// out to processes.
func runInWorkers(jobs []job, workers int, outDir string, done func(*sim.Report)) {
	results := make([]chan *sim.Report, len(jobs))
	for i := range results {
		results[i] = make(chan *sim.Report, 1)
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				results[i] <- runWorker(jobs[i].s.Name, jobs[i].seed, outDir)
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
		done(<-results[i])
	}
	wg.Wait()
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

// runWorker runs one simulation in a child process (this binary, `sim
// --scenario NAME --seed N --json [--out DIR]`) and reads its report from
// the child's stdout. A worker that dies or prints no report counts as a
// failed run.
func runWorker(name string, seed uint64, outDir string) *sim.Report {
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
