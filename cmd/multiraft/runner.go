package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/multiraft/multiraft/scenarios"
	"github.com/multiraft/multiraft/sim"
)

// runFiles are the files a run made in this process writes: its trace and
// its picture (empty: none).
type runFiles struct {
	trace, timeline string
}

// runInProcess makes the runs one after another in this process. Each
// report goes to completed (for progress) and then to done, in job order;
// it stops when done returns false, or at the first run it cannot make
// (its trace or picture cannot be written).
func runInProcess(jobs jobList, files runFiles, completed func(*sim.Report), done func(*sim.Report) bool) error {
	for i := 0; i < jobs.Len(); i++ {
		j := jobs.At(i)
		rep, err := runLocal(j.s, j.seed, files)
		if err != nil {
			return err
		}
		completed(rep)
		if !done(rep) {
			return nil
		}
	}
	return nil
}

// runInWorkers makes each run in a worker process, workers at a time. It
// hands every report to completed as it arrives (in any order) and to
// done in the order of jobs; when done returns false it stops: no new runs
// start and the running workers are killed. One simulation runs per
// process at a time (a run replaces raft's random source), so a sweep fans
// out to processes. Runs are handed out at most a window ahead of the
// oldest unprinted one, so a slow run does not pile up reports. extra are
// flags every worker gets (--out, the configuration overrides).
func runInWorkers(jobs jobList, workers int, extra []string, completed func(*sim.Report), done func(*sim.Report) bool) {
	type result struct {
		i   int
		rep *sim.Report
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	next := make(chan int)
	results := make(chan result, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				j := jobs.At(i)
				rep := workerRun(ctx, j.s.Name, j.seed, extra)
				select {
				case results <- result{i, rep}:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	n, window := jobs.Len(), 16*workers
	pending := map[int]*sim.Report{}
	sent, printed := 0, 0
loop:
	for printed < n {
		var send chan int
		if sent < n && sent < printed+window {
			send = next
		}
		select {
		case send <- sent:
			sent++
		case r := <-results:
			completed(r.rep)
			pending[r.i] = r.rep
			for {
				rep, ok := pending[printed]
				if !ok {
					break
				}
				delete(pending, printed)
				printed++
				if !done(rep) {
					break loop
				}
			}
		}
	}
	close(next)
	cancel()
	wg.Wait()
}

// workerRun makes one run in a worker process (tests replace it).
var workerRun = runWorker

// runLocal runs one simulation in this process, writing its trace and its
// picture when asked.
func runLocal(s scenarios.Scenario, seed uint64, files runFiles) (*sim.Report, error) {
	var opts sim.Options
	var buffered *bufio.Writer
	if files.trace != "" {
		f, err := os.Create(files.trace)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		buffered = bufio.NewWriterSize(f, 1<<20)
		opts.Trace = buffered
	}
	if files.timeline != "" {
		opts.Timeline = sim.NewTimeline()
	}
	opts.Wall = time.Now
	start := time.Now()
	rep := sim.RunWith(s.Config, seed, opts)
	rep.WallMs = float64(time.Since(start).Microseconds()) / 1000
	if buffered != nil {
		if err := buffered.Flush(); err != nil {
			return nil, fmt.Errorf("write trace: %w", err)
		}
	}
	if opts.Timeline != nil {
		if err := writeTimeline(opts.Timeline, files.timeline); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// writeTimeline writes the picture of a run to path.
func writeTimeline(tl *sim.Timeline, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := tl.WriteHTML(f); err != nil {
		f.Close()
		return fmt.Errorf("write timeline: %w", err)
	}
	return f.Close()
}

// runWorker runs one simulation in a child process (this binary, `sim
// --scenario NAME --seed N --json` and extra) and reads its report from
// the child's stdout. A worker that dies or prints no report counts as a
// failed run.
func runWorker(ctx context.Context, name string, seed uint64, extra []string) *sim.Report {
	self, err := os.Executable()
	if err != nil {
		return &sim.Report{Scenario: name, Seed: seed, Violation: fmt.Sprintf("worker: %v", err), Violations: []string{"worker failed"}}
	}
	args := append([]string{"sim", "--scenario", name, "--seed", strconv.FormatUint(seed, 10), "--json"}, extra...)
	cmd := exec.CommandContext(ctx, self, args...)
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
