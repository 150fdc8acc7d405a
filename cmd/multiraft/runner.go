package main

import (
	"bufio"
	"context"
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

// runFiles are the files a run made in this process writes: its trace and
// its picture (empty: none).
type runFiles struct {
	trace, timeline string
}

// runInProcess makes the runs one after another in this process. Each
// report goes to completed (for progress) and then to done, in job order;
// it stops when done returns false, or at the first run it cannot make
// (its trace or picture cannot be written). A run still going after
// timeout (0: no limit) fails, and the runs stop there: stalled says so.
func runInProcess(jobs jobList, files runFiles, timeout time.Duration, completed func(*sim.Report), done func(*sim.Report) bool) (stalled bool, err error) {
	for i := 0; i < jobs.Len(); i++ {
		j := jobs.At(i)
		rep, stalled, err := runWithin(j, files, timeout)
		if err != nil {
			return false, err
		}
		completed(rep)
		if !done(rep) || stalled {
			return stalled, nil
		}
	}
	return false, nil
}

// runWithin makes run j in this process, as runLocal does, and waits for
// it at most timeout (0: no limit). A run that outlives it is abandoned
// still going (nothing stops a simulation from outside, and no other can
// start in this process while it runs: they share raft's random source);
// its report is a failure that says so, and stalled is true.
func runWithin(j job, files runFiles, timeout time.Duration) (rep *sim.Report, stalled bool, err error) {
	if timeout <= 0 {
		rep, err := makeRun(j.s, j.seed, files)
		return rep, false, err
	}
	type result struct {
		rep *sim.Report
		err error
	}
	finished := make(chan result, 1)
	run := makeRun
	go func() {
		rep, err := run(j.s, j.seed, files)
		finished <- result{rep, err}
	}()
	limit := time.NewTimer(timeout)
	defer limit.Stop()
	select {
	case r := <-finished:
		return r.rep, false, r.err
	case <-limit.C:
		msg := fmt.Sprintf("%s of %v (wall clock); abandoned (a run in this process cannot be killed)", runTimeoutExceeded, timeout)
		return &sim.Report{Scenario: j.s.Name, Seed: j.seed, WallMs: millis(timeout), Violation: msg, Violations: []string{msg}}, true, nil
	}
}

// runTimeoutExceeded begins the violation of a run that outlived
// --run-timeout.
const runTimeoutExceeded = "run exceeded the --run-timeout"

// makeRun makes a run in this process (tests replace it).
var makeRun = runLocal

// millis is d in milliseconds, as reports count wall time.
func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// runInWorkers makes the runs in worker processes, workers at a time. It
// hands every report to completed as it arrives (in any order) and to
// done in the order of jobs; when done returns false it stops: no new runs
// start and the running workers are killed. One simulation runs per
// process at a time (a run replaces raft's random source), so a sweep fans
// out to processes; each worker process lives for many runs, one after
// another, as `multiraft sim --worker` does (a process per run cost a
// fresh heap each time: a third more CPU on a swarm sweep). Runs are
// handed out at most a window ahead of the oldest unprinted one, so a slow
// run does not pile up reports. extra are flags every worker gets (--out,
// the configuration overrides). A run still going after timeout (0: no
// limit) fails, and its worker process is killed and replaced.
func runInWorkers(jobs jobList, workers int, extra []string, timeout time.Duration, completed func(*sim.Report), done func(*sim.Report) bool) {
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
			wk := startWorker(ctx, extra, timeout)
			defer wk.close()
			for i := range next {
				j := jobs.At(i)
				rep := wk.run(j.s.Name, j.seed)
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

// worker makes runs one after another for runInWorkers.
type worker interface {
	// run makes the run of scenario name at seed and returns its report;
	// a run the worker could not make is a failed report saying why.
	run(name string, seed uint64) *sim.Report
	// close ends the worker.
	close()
}

// startWorker starts a worker (tests replace it). Cancelling ctx kills it;
// so does a run still going after timeout (0: no limit).
var startWorker = func(ctx context.Context, extra []string, timeout time.Duration) worker {
	return &processWorker{ctx: ctx, args: append([]string{"sim", "--worker"}, extra...), warn: os.Stderr, timeout: timeout}
}

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
	rep.WallMs = millis(time.Since(start))
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

// processWorker is a worker process: this binary (or path) with args
// (`sim --worker` and the sweep's flags), started at its first run. It is
// handed a run as a line "SCENARIO SEED" on its stdin, acknowledges it
// with the line "started SCENARIO SEED" and answers with the run's JSON
// report, one line, on its stdout. When it dies during a run (a crash, a
// panic, the kernel's OOM killer), that run fails with the beginning and
// the end of what the process wrote to stderr, and the next run starts a
// new process; when it is found dead before it acknowledged a run, the
// run is handed to a new process instead. A run still going timeout after
// it was acknowledged (a check that never ends, a livelock) is a process
// that dies: it is killed, the run fails, the next run starts a new one.
type processWorker struct {
	ctx     context.Context
	path    string        // the program; empty: this binary
	args    []string      // its arguments
	env     []string      // added to this process's environment
	warn    io.Writer     // told when a process died between runs (nil: nobody)
	timeout time.Duration // a run's wall-clock limit (0: none)
	// afterFunc arms the limit (nil: time.AfterFunc; tests make it fire
	// at a chosen moment).
	afterFunc func(d time.Duration, f func()) interface{ Stop() bool }
	cmd       *exec.Cmd
	stdin     io.WriteCloser
	stdout    *bufio.Reader
	stderr    *headTailBuffer
}

// start starts the process.
func (w *processWorker) start() error {
	path := w.path
	if path == "" {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		path = self
	}
	cmd := exec.CommandContext(w.ctx, path, w.args...)
	if len(w.env) > 0 {
		cmd.Env = append(os.Environ(), w.env...)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	w.stderr = &headTailBuffer{keep: 2 << 10}
	cmd.Stderr = w.stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	w.cmd, w.stdin, w.stdout = cmd, stdin, bufio.NewReaderSize(stdout, 64<<10)
	return nil
}

func (w *processWorker) run(name string, seed uint64) *sim.Report {
	failed := func(format string, args ...any) *sim.Report {
		msg := fmt.Sprintf("worker for %s seed %d: ", name, seed) + fmt.Sprintf(format, args...)
		return &sim.Report{Scenario: name, Seed: seed, Violation: msg, Violations: []string{msg}}
	}
	ack := fmt.Sprintf("started %s %d\n", name, seed)
	for attempt := 0; ; attempt++ {
		if w.cmd == nil {
			if err := w.start(); err != nil {
				return failed("cannot start a worker process: %v", err)
			}
		}
		got, err := "", error(nil)
		// The acknowledgement is bounded too: a process still busy with
		// its last run's end (a visualization it writes after the report)
		// and never reading the next is as stuck as a run that never ends.
		stalled := w.limit()
		if _, err = fmt.Fprintf(w.stdin, "%s %d\n", name, seed); err == nil {
			got, err = w.stdout.ReadString('\n')
		}
		timedOut := stalled()
		if err == nil && got == ack && !timedOut {
			break
		}
		if err == nil && !timedOut { // a line, but not the acknowledgement
			w.kill()
			return failed("the worker process answered %q, not %q%s", truncate(got, 200), ack, w.stderr.quoted())
		}
		// It died before it took the run (after the last one), or did not
		// take it within the limit and is killed (whatever it answered as
		// the limit fired): the run goes to a new process, once, and
		// whoever runs the sweep is told.
		cause, what := fmt.Sprint(err), "died between two runs"
		if timedOut {
			cause = fmt.Sprintf("no acknowledgement within the --run-timeout of %v: killed", w.timeout)
			what = "gave " + cause
		}
		exit := w.stop()
		if attempt > 0 {
			return failed("a new worker process died before it started the run (%s; exit: %v)%s", cause, exit, w.stderr.quoted())
		}
		if w.warn != nil {
			fmt.Fprintf(w.warn, "multiraft sim: a worker process %s (exit: %v)%s; the runs go on in a new one\n", what, exit, w.stderr.quoted())
		}
	}
	start := time.Now()
	line, timedOut, err := w.readReport()
	if timedOut {
		w.stop() // killed: the next run starts a new process
		if err != nil {
			rep := failed("%s of %v (wall clock); killed%s", runTimeoutExceeded, w.timeout, w.stderr.quoted())
			rep.WallMs = millis(time.Since(start))
			return rep
		}
		// The report came as the time ran out: the run finished, it stands.
	}
	if err != nil {
		exit := w.stop()
		return failed("the worker process died (%v; exit: %v)%s", err, exit, w.stderr.quoted())
	}
	rep := &sim.Report{}
	if err := json.Unmarshal(line, rep); err != nil {
		w.kill()
		return failed("the worker process printed no report (%v): %q%s", err, truncate(string(line), 200), w.stderr.quoted())
	}
	return rep
}

// readReport reads the line of the run's report. When w.timeout passes
// first, the process is killed (the read then fails) and timedOut is true.
func (w *processWorker) readReport() (line []byte, timedOut bool, err error) {
	stalled := w.limit()
	line, err = w.stdout.ReadBytes('\n')
	return line, stalled(), err
}

// limit kills the process when w.timeout passes (never, with no timeout)
// and returns a function that disarms it and reports whether it fired.
func (w *processWorker) limit() (stalled func() bool) {
	if w.timeout <= 0 {
		return func() bool { return false }
	}
	proc := w.cmd.Process
	after := w.afterFunc
	if after == nil {
		after = func(d time.Duration, f func()) interface{ Stop() bool } { return time.AfterFunc(d, f) }
	}
	t := after(w.timeout, func() { proc.Kill() })
	// Stop fails when the limit has fired: the process is killed, or is
	// being killed.
	return func() bool { return !t.Stop() }
}

// stop ends the process (it exits when its stdin closes; a cancelled
// context kills it) and returns how it exited. The next run starts a
// new one.
func (w *processWorker) stop() error {
	if w.cmd == nil {
		return nil
	}
	w.stdin.Close()
	err := w.cmd.Wait()
	w.cmd = nil
	return err
}

// kill ends a process that misbehaves but may be alive: nobody reads its
// stdout any more, so it might never get to read that its stdin closed.
func (w *processWorker) kill() {
	if w.cmd != nil && w.cmd.Process != nil {
		w.cmd.Process.Kill()
	}
	w.stop()
}

func (w *processWorker) close() { w.stop() }

// headTailBuffer keeps the first and the last keep bytes written to it: a
// worker process's stderr (written by exec's copying goroutine, read by the
// worker's after the process ended), where a panic's message comes first
// and its stack after it, as long as it is deep.
type headTailBuffer struct {
	mu         sync.Mutex
	keep       int
	head, tail []byte
	cut        bool // bytes were dropped between head and tail
}

func (b *headTailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(p)
	if room := b.keep - len(b.head); room > 0 {
		take := min(room, len(p))
		b.head = append(b.head, p[:take]...)
		p = p[take:]
	}
	b.tail = append(b.tail, p...)
	if over := len(b.tail) - b.keep; over > 0 {
		b.tail = append(b.tail[:0], b.tail[over:]...)
		b.cut = true
	}
	return n, nil
}

// quoted is what the buffer holds, as a suffix for a message: empty when
// nothing was written.
func (b *headTailBuffer) quoted() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := string(b.head)
	if b.cut {
		s += "\n[...]\n"
	}
	s = strings.TrimSpace(s + string(b.tail))
	if s == "" {
		return ""
	}
	return "; its stderr:\n" + s
}

// truncate cuts s to at most n bytes.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// serveRuns is `multiraft sim --worker`: it reads runs from in, a line
// "SCENARIO SEED" each, acknowledges each with the line "started SCENARIO
// SEED", makes it with o's overrides and prints its report as one JSON
// line on stdout, until in ends. A failed run's violations and hints are
// the sweep's to print, from the report: the worker's stderr is left to
// what the Go runtime says when the process dies. A line it cannot parse
// ends it with exit code 2.
func serveRuns(o simOptions, in io.Reader, stdout, stderr io.Writer) int {
	p := &printer{stdout: stdout, stderr: io.Discard, json: true, outDir: o.outDir, replayArgs: o.overrides.args()}
	lines := bufio.NewScanner(in)
	for lines.Scan() {
		name, seedText, ok := strings.Cut(strings.TrimSpace(lines.Text()), " ")
		seed, err := strconv.ParseUint(seedText, 10, 64)
		if !ok || err != nil {
			return errorExit(stderr, fmt.Errorf("--worker: want a line \"SCENARIO SEED\", got %q", lines.Text()))
		}
		s, err := scenarios.Get(name)
		if err != nil {
			return errorExit(stderr, fmt.Errorf("--worker: %w", err))
		}
		fmt.Fprintf(stdout, "started %s %d\n", name, seed)
		s.Config = o.overrides.apply(s, seed)
		rep, err := runLocal(s, seed, runFiles{})
		if err != nil {
			return errorExit(stderr, err)
		}
		p.localRun(rep)
	}
	if err := lines.Err(); err != nil {
		return errorExit(stderr, fmt.Errorf("--worker: read runs: %w", err))
	}
	return 0
}
