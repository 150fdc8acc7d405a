package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/multiraft/multiraft/sim"
)

// TestMain lets this test binary play a worker process that misbehaves,
// for TestWorkerProcessThatDies.
func TestMain(m *testing.M) {
	if os.Getenv("MULTIRAFT_FAKE_WORKER") != "" {
		os.Exit(fakeWorkerMain())
	}
	os.Exit(m.Run())
}

// fakeWorkerMain answers runs as `sim --worker` does, except that at seed
// 2 it panics (the process dies mid-run), at seed 3 it prints a line that
// is not a report, at seed 7 it exits after the run (before the next one),
// at seed 11 it panics deep in a stack, at seed 12 it answers without
// acknowledging the run, at seed 13 it prints a line that is not a report
// and then a MiB, and at seeds 20 and 21 it hangs: it waits for a line on
// stdin, which nobody sends while it owes a report. At seed 30 it hangs
// before it acknowledges the run, as a process still busy with its last
// run would. With
// MULTIRAFT_FAKE_WORKER_DIR set, each process makes a file there named by
// its pid.
func fakeWorkerMain() int {
	if dir := os.Getenv("MULTIRAFT_FAKE_WORKER_DIR"); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, strconv.Itoa(os.Getpid())), nil, 0o644); err != nil {
			panic(err)
		}
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		name, seedText, _ := strings.Cut(in.Text(), " ")
		seed, _ := strconv.ParseUint(seedText, 10, 64)
		if seed == 30 {
			fmt.Fprintf(os.Stderr, "hanging before seed %d\n", seed)
			in.Scan()
			return 4
		}
		if seed != 12 {
			fmt.Printf("started %s %d\n", name, seed)
		}
		switch seed {
		case 2:
			panic("planted crash")
		case 3:
			fmt.Println("not a report")
		case 7:
			b, _ := json.Marshal(&sim.Report{Scenario: name, Seed: seed, OK: true})
			fmt.Println(string(b))
			fmt.Fprintln(os.Stderr, "exiting after seed 7")
			return 3
		case 11:
			deepPanic(200)
		case 12:
			fmt.Println("hello")
		case 13: // a line that is not a report, then more than a pipe holds
			fmt.Println("hello")
			fmt.Print(strings.Repeat(strings.Repeat("x", 1023)+"\n", 1024))
		case 20, 21:
			fmt.Fprintf(os.Stderr, "hanging at seed %d\n", seed)
			in.Scan()
			return 4
		default:
			b, _ := json.Marshal(&sim.Report{Scenario: name, Seed: seed, OK: true, TraceHash: fmt.Sprint(os.Getpid())})
			fmt.Println(string(b))
		}
	}
	return 0
}

func deepPanic(depth int) {
	if depth == 0 {
		panic("planted deep crash")
	}
	deepPanic(depth - 1)
}

func TestWorkerProcessThatDies(t *testing.T) {
	var warned strings.Builder
	w := &processWorker{ctx: context.Background(), path: os.Args[0], env: []string{"MULTIRAFT_FAKE_WORKER=1"}, warn: &warned}
	defer w.close()
	first := w.run("static", 1)
	again := w.run("static", 4)
	if !first.OK || !again.OK || first.TraceHash != again.TraceHash {
		t.Fatalf("two runs in one worker: %+v, %+v; want both passed, by one process", first, again)
	}
	died := w.run("static", 2)
	if died.OK || died.Seed != 2 || !strings.Contains(died.Violation, "worker process died") ||
		!strings.Contains(died.Violation, "panic: planted crash") {
		t.Errorf("a worker dying mid-run: %+v; want a failed run of seed 2 quoting its panic", died)
	}
	after := w.run("static", 5)
	if !after.OK || after.Seed != 5 || after.TraceHash == first.TraceHash {
		t.Errorf("the run after a worker died: %+v; want it passed, by a new process", after)
	}
	garbled := w.run("static", 3)
	if garbled.OK || !strings.Contains(garbled.Violation, "printed no report") || !strings.Contains(garbled.Violation, "not a report") {
		t.Errorf("a worker printing no report: %+v", garbled)
	}
	if last := w.run("static", 6); !last.OK || last.Seed != 6 {
		t.Errorf("the run after a garbled one: %+v", last)
	}
	// A worker that exits after a run: the next run, which it never
	// acknowledged, goes to a new process and passes.
	if r := w.run("static", 7); !r.OK {
		t.Fatalf("seed 7: %+v", r)
	}
	if r := w.run("static", 8); !r.OK || r.Seed != 8 {
		t.Errorf("the run after a worker exited between runs: %+v; want it made by a new one", r)
	}
	if got := warned.String(); !strings.Contains(got, "died between two runs (exit: exit status 3)") || !strings.Contains(got, "exiting after seed 7") {
		t.Errorf("the sweep was told %q; want the exit and the stderr of the worker that died between runs", got)
	}
	// A deep stack: the panic's message, at the start of stderr, is quoted.
	if r := w.run("static", 11); r.OK || !strings.Contains(r.Violation, "panic: planted deep crash") ||
		!strings.Contains(r.Violation, "[...]") || len(r.Violation) > 5<<10 {
		t.Errorf("a deep panic: %d bytes quoted, %q...; want its message, a cut, at most 4 KiB of stderr", len(r.Violation), truncate(r.Violation, 300))
	}
	if r := w.run("static", 12); r.OK || !strings.Contains(r.Violation, `answered "hello\n"`) {
		t.Errorf("a worker answering without acknowledging: %+v", r)
	}
	// A line that is not a report, then more than a pipe holds: the
	// worker is killed, not waited for while it blocks on a write nobody
	// reads.
	if r := w.run("static", 13); r.OK || !strings.Contains(r.Violation, `printed no report`) {
		t.Errorf("a worker printing no report, then a MiB: %s", r.Violation)
	}
	if r := w.run("static", 14); !r.OK {
		t.Errorf("the run after a killed worker: %+v", r)
	}
}

// within runs f and fails the test if it does not return within limit
// (a bound, not a wait: f returns as soon as it is done).
func within(t *testing.T, limit time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(limit):
		t.Fatalf("%s: still going after %v", what, limit)
	}
}

// TestWorkerProcessThatHangs checks --run-timeout in a worker process: a
// run still going after it fails, naming the limit and quoting the
// process's stderr, and the next run is made by a new process.
func TestWorkerProcessThatHangs(t *testing.T) {
	w := &processWorker{ctx: context.Background(), path: os.Args[0], env: []string{"MULTIRAFT_FAKE_WORKER=1"},
		warn: io.Discard, timeout: 200 * time.Millisecond}
	defer w.close()
	var first, hung, after *sim.Report
	within(t, time.Minute, "three runs, one hung", func() {
		first = w.run("static", 1)
		hung = w.run("static", 20)
		after = w.run("static", 4)
	})
	if !first.OK {
		t.Fatalf("a quick run under the limit: %+v", first)
	}
	if hung.OK || hung.Scenario != "static" || hung.Seed != 20 ||
		!strings.Contains(hung.Violation, "run exceeded the --run-timeout of 200ms (wall clock); killed") ||
		!strings.Contains(hung.Violation, "hanging at seed 20") || hung.WallMs < 200 {
		t.Errorf("a hung run: %+v; want a failed run of seed 20 naming the limit and quoting stderr", hung)
	}
	if !after.OK || after.Seed != 4 || after.TraceHash == first.TraceHash {
		t.Errorf("the run after a hung one: %+v; want it passed, by a new process (not %s)", after, first.TraceHash)
	}
}

// TestWorkerProcessThatNeverAcknowledges checks that --run-timeout bounds
// the wait for a run's acknowledgement too: a process that never takes the
// run is killed, the run goes to a new process once, and when that one
// hangs as well the run fails, naming the limit; the next run is made by a
// new process.
func TestWorkerProcessThatNeverAcknowledges(t *testing.T) {
	var warned strings.Builder
	w := &processWorker{ctx: context.Background(), path: os.Args[0], env: []string{"MULTIRAFT_FAKE_WORKER=1"},
		warn: &warned, timeout: 200 * time.Millisecond}
	defer w.close()
	var hung, after *sim.Report
	within(t, time.Minute, "a run never acknowledged, then one more", func() {
		hung = w.run("static", 30)
		after = w.run("static", 4)
	})
	if hung.OK || hung.Seed != 30 || !strings.Contains(hung.Violation, "no acknowledgement within the --run-timeout of 200ms") ||
		!strings.Contains(hung.Violation, "hanging before seed 30") {
		t.Errorf("a run never acknowledged: %+v; want a failed run of seed 30 naming the limit and quoting stderr", hung)
	}
	if !strings.Contains(warned.String(), "no acknowledgement") {
		t.Errorf("the first process's hang was not told: %q", warned.String())
	}
	if !after.OK || after.Seed != 4 {
		t.Errorf("the run after: %+v; want it passed, by a new process", after)
	}
}

// TestServeRuns checks `sim --worker`: the reports it prints for the runs
// read from stdin are what the same runs print in a process of their own,
// the overrides applied, and a bad line is an error.
func TestServeRuns(t *testing.T) {
	o, err := parseSimOptions([]string{"--worker", "--duration", "3s", "--clients", "2"}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := serveRuns(o, strings.NewReader("static 3\nsplit 4\n"), &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var lines []string
	for i, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if i%2 == 0 {
			if want := []string{"started static 3", "started split 4"}[i/2]; l != want {
				t.Errorf("line %d: %q, want %q", i, l, want)
			}
			continue
		}
		lines = append(lines, l)
	}
	if len(lines) != 2 {
		t.Fatalf("%d report lines, want 2:\n%s", len(lines), out.String())
	}
	for i, run := range [][2]string{{"static", "3"}, {"split", "4"}} {
		var got, want sim.Report
		if err := json.Unmarshal([]byte(lines[i]), &got); err != nil {
			t.Fatal(err)
		}
		var alone bytes.Buffer
		args := []string{"--scenario", run[0], "--seed", run[1], "--duration", "3s", "--clients", "2", "--json"}
		if code := runSim(args, &alone, &errOut); code != 0 {
			t.Fatalf("%v: exit %d", args, code)
		}
		if err := json.Unmarshal(alone.Bytes(), &want); err != nil {
			t.Fatal(err)
		}
		if got.Scenario != run[0] || got.TraceHash != want.TraceHash || got.OpsTotal != want.OpsTotal || got.OpsTotal == 0 {
			t.Errorf("%s seed %s served: %s ops %d; alone: %s ops %d", run[0], run[1], got.TraceHash, got.OpsTotal, want.TraceHash, want.OpsTotal)
		}
	}
	for _, bad := range []string{"static\n", "static x\n", "nosuch 1\n"} {
		errOut.Reset()
		if code := serveRuns(o, strings.NewReader(bad), &out, &errOut); code != 2 || errOut.Len() == 0 {
			t.Errorf("line %q: exit %d, stderr %q; want 2 and a message", bad, code, errOut.String())
		}
	}
}

// firesAtStop is a limit that fires the moment it is disarmed, the first
// time only: the process is killed just after it answered.
type firesAtStop struct{ f func() }

func (t firesAtStop) Stop() bool { t.f(); return false }

// A worker's acknowledgement that arrives as the --run-timeout fires: the
// limit kills the process, so it will never report. The run goes to a new
// process (and passes) instead of failing as a process that died mid-run.
func TestWorkerAcknowledgingAsTheLimitFires(t *testing.T) {
	var warned strings.Builder
	armed := 0
	w := &processWorker{ctx: context.Background(), path: os.Args[0], env: []string{"MULTIRAFT_FAKE_WORKER=1"},
		warn: &warned, timeout: time.Minute,
		afterFunc: func(d time.Duration, f func()) interface{ Stop() bool } {
			armed++
			if armed == 1 {
				return firesAtStop{f}
			}
			return time.AfterFunc(d, f)
		}}
	defer w.close()
	var rep *sim.Report
	within(t, time.Minute, "a run acknowledged as its limit fired", func() { rep = w.run("static", 4) })
	if !rep.OK || rep.Seed != 4 {
		t.Fatalf("the run: %+v; want it passed, by a new process", rep)
	}
	if !strings.Contains(warned.String(), "no acknowledgement within the --run-timeout") {
		t.Errorf("the killed process was not told: %q", warned.String())
	}
}
