package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/multiraft/multiraft/scenarios"
	"github.com/multiraft/multiraft/sim"
)

// funcWorker is a worker without a process: a run calls the function.
type funcWorker func(name string, seed uint64) *sim.Report

func (f funcWorker) run(name string, seed uint64) *sim.Report { return f(name, seed) }
func (funcWorker) close()                                     {}

// fakeWorkers replaces the worker processes: a run of seed s fails when
// failing[s], and later seeds finish first (so reports arrive out of
// order). It records the seeds started.
func fakeWorkers(t *testing.T, failing map[uint64]bool) *[]uint64 {
	t.Helper()
	var mu sync.Mutex
	var started []uint64
	saved := startWorker
	startWorker = func(ctx context.Context, extra []string, _ time.Duration) worker {
		return funcWorker(func(name string, seed uint64) *sim.Report {
			mu.Lock()
			started = append(started, seed)
			mu.Unlock()
			select {
			case <-time.After(time.Duration(40-seed%40) * time.Millisecond):
			case <-ctx.Done():
			}
			rep := &sim.Report{Scenario: name, Seed: seed, OK: !failing[seed], SimMs: 60000, SimWallMs: 1000}
			if !rep.OK {
				rep.Violation = "planted"
				rep.Violations = []string{"planted"}
			}
			return rep
		})
	}
	t.Cleanup(func() { startWorker = saved })
	return &started
}

func TestSweepPrintsInOrderAndSummarizes(t *testing.T) {
	fakeWorkers(t, map[uint64]bool{7: true, 12: true})
	var out, errOut bytes.Buffer
	code := runSim([]string{"--scenario", "static", "--seeds", "1-20", "--workers", "4"}, &out, &errOut)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (two runs failed)\n%s", code, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var seeds []string
	for _, l := range lines[1:21] {
		seeds = append(seeds, strings.Fields(l)[1])
	}
	if want := strings.Fields("1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20"); !slices.Equal(seeds, want) {
		t.Errorf("rows out of order: %v", seeds)
	}
	summary := strings.Join(lines[len(lines)-3:], "\n")
	if !strings.Contains(summary, "failing seeds") || !strings.Contains(lines[len(lines)-2], "static") ||
		!slices.Equal(strings.Fields(lines[len(lines)-2]), []string{"static", "20", "2", "60x", "7", "12"}) ||
		lines[len(lines)-1] != "20 runs, 2 failed" {
		t.Errorf("summary:\n%s", summary)
	}
	if strings.Count(errOut.String(), "FAIL static seed") != 2 || strings.Contains(errOut.String(), "progress:") {
		t.Errorf("stderr (no progress line for a short sweep off a terminal):\n%s", errOut.String())
	}
}

func TestSweepStopsOnFailure(t *testing.T) {
	started := fakeWorkers(t, map[uint64]bool{9: true, 30: true})
	var out, errOut bytes.Buffer
	code := runSim([]string{"--scenario", "static", "--seeds", "1-200", "--workers", "2", "--stop-on-failure", "--json"}, &out, &errOut)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if n := strings.Count(out.String(), "\n"); n != 9 {
		t.Errorf("%d JSON lines, want seeds 1-9 and no more:\n%s", n, out.String())
	}
	if !strings.Contains(errOut.String(), "stopped at the first failure") || !strings.Contains(errOut.String(), "9 runs, 1 failed") {
		t.Errorf("stderr:\n%s", errOut.String())
	}
	if n := len(*started); n > 9+16*2 {
		t.Errorf("%d runs started; at most a window (32) beyond the failure should", n)
	}
}

// fakeProcessWorkers makes the sweep's workers processes of this test
// binary playing fakeWorkerMain (seeds 20 and 21 hang). It returns the
// directory where each process started leaves a file.
func fakeProcessWorkers(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	saved := startWorker
	startWorker = func(ctx context.Context, extra []string, timeout time.Duration) worker {
		return &processWorker{ctx: ctx, path: os.Args[0], warn: io.Discard, timeout: timeout,
			env: []string{"MULTIRAFT_FAKE_WORKER=1", "MULTIRAFT_FAKE_WORKER_DIR=" + dir}}
	}
	t.Cleanup(func() { startWorker = saved })
	return dir
}

// jsonReports parses one JSON report per line.
func jsonReports(t *testing.T, out string) []sim.Report {
	t.Helper()
	var reps []sim.Report
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var r sim.Report
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("%v: %q", err, l)
		}
		reps = append(reps, r)
	}
	return reps
}

// wantStderr fails the test unless stderr holds want.
func wantStderr(t *testing.T, stderr, want string) {
	t.Helper()
	if !strings.Contains(stderr, want) {
		t.Errorf("stderr lacks %q:\n%s", want, stderr)
	}
}

// TestSweepKillsAStalledRun checks --run-timeout with worker processes:
// the two runs that hang fail, naming the limit; their processes are
// killed and replaced, and the sweep reports every run after them.
func TestSweepKillsAStalledRun(t *testing.T) {
	dir := fakeProcessWorkers(t)
	var out, errOut bytes.Buffer
	code := -1
	within(t, time.Minute, "a sweep with two hung runs", func() {
		code = runSim([]string{"--scenario", "static", "--seeds", "18-26", "--workers", "2", "--run-timeout", "200ms", "--json"}, &out, &errOut)
	})
	if code != 1 {
		t.Errorf("exit %d, want 1 (two runs failed)", code)
	}
	reps := jsonReports(t, out.String())
	if len(reps) != 9 {
		t.Fatalf("%d reports, want seeds 18-26:\n%s\n%s", len(reps), out.String(), errOut.String())
	}
	for i, r := range reps {
		seed := uint64(18 + i)
		hung := seed == 20 || seed == 21
		if r.Seed != seed || r.Scenario != "static" || r.OK == hung {
			t.Errorf("report %d: %s seed %d ok %v; want static seed %d ok %v", i, r.Scenario, r.Seed, r.OK, seed, !hung)
		}
		want := fmt.Sprintf("worker for static seed %d: run exceeded the --run-timeout of 200ms (wall clock); killed; its stderr:\nhanging at seed %d", seed, seed)
		if hung && r.Violation != want {
			t.Errorf("seed %d: violation %q, want %q", seed, r.Violation, want)
		}
	}
	for _, want := range []string{
		"FAIL static seed 20: worker for static seed 20: run exceeded the --run-timeout of 200ms",
		"replay: go run ./cmd/multiraft sim --scenario static --seed 20 --run-timeout 0 --trace ",
		"FAIL static seed 21: worker for static seed 21: run exceeded the --run-timeout of 200ms",
		"replay: go run ./cmd/multiraft sim --scenario static --seed 21 --run-timeout 0 --trace ",
		"9 runs, 2 failed",
	} {
		wantStderr(t, errOut.String(), want)
	}
	// Two workers, at least one of them replaced: every process of a
	// hung run is killed, and runs came after.
	if started, _ := os.ReadDir(dir); len(started) < 3 {
		t.Errorf("%d worker processes started, want at least 3 (two, and one replacing a killed one)", len(started))
	}

	// --stop-on-failure stops at a hung run.
	out.Reset()
	errOut.Reset()
	within(t, time.Minute, "a sweep stopping at a hung run", func() {
		code = runSim([]string{"--scenario", "static", "--seeds", "18-26", "--workers", "2", "--run-timeout", "200ms", "--json", "--stop-on-failure"}, &out, &errOut)
	})
	if reps := jsonReports(t, out.String()); code != 1 || len(reps) != 3 || reps[2].Seed != 20 || reps[2].OK ||
		!strings.Contains(errOut.String(), "stopped at the first failure") || !strings.Contains(errOut.String(), "3 runs, 1 failed") {
		t.Errorf("--stop-on-failure: exit %d, stdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
}

// TestInProcessRunTimeout checks --run-timeout with --workers 1: the run
// that hangs fails, naming the limit, and the command stops there (the
// run cannot be killed) with the summary of the runs reported.
func TestInProcessRunTimeout(t *testing.T) {
	release := make(chan struct{})
	saved := makeRun
	makeRun = func(s scenarios.Scenario, seed uint64, _ runFiles) (*sim.Report, error) {
		if seed == 3 {
			<-release
		}
		return &sim.Report{Scenario: s.Name, Seed: seed, OK: true}, nil
	}
	t.Cleanup(func() {
		makeRun = saved
		close(release)
	})
	var out, errOut bytes.Buffer
	code := -1
	within(t, time.Minute, "a sweep in this process with a hung run", func() {
		code = runSim([]string{"--scenario", "static", "--seeds", "1-5", "--workers", "1", "--run-timeout", "200ms", "--json"}, &out, &errOut)
	})
	reps := jsonReports(t, out.String())
	want := "run exceeded the --run-timeout of 200ms (wall clock); abandoned (a run in this process cannot be killed)"
	if code != 1 || len(reps) != 3 || !reps[0].OK || !reps[1].OK || reps[2].OK || reps[2].Seed != 3 || reps[2].Violation != want {
		t.Errorf("exit %d, reports:\n%s\nwant 1, seeds 1 and 2 passed, seed 3 failed with %q", code, out.String(), want)
	}
	for _, w := range []string{
		"FAIL static seed 3: " + want,
		"replay: go run ./cmd/multiraft sim --scenario static --seed 3 --run-timeout 0 --trace ",
		"shrink: go run ./cmd/multiraft sim --scenario static --seed 3 --run-timeout 0 --shrink",
		"stopped at a run that outlived --run-timeout",
		"3 of 5 runs reported",
		"3 runs, 1 failed",
	} {
		wantStderr(t, errOut.String(), w)
	}

	// One run: it fails the same way; there is no sweep to stop.
	out.Reset()
	errOut.Reset()
	within(t, time.Minute, "one hung run in this process", func() {
		code = runSim([]string{"--scenario", "static", "--seed", "3", "--run-timeout", "200ms", "--timeline", filepath.Join(t.TempDir(), "run.html")}, &out, &errOut)
	})
	if code != 1 || !strings.Contains(errOut.String(), "FAIL static seed 3: "+want) || strings.Contains(errOut.String(), "stopped") ||
		strings.Contains(errOut.String(), "timeline: ") || !strings.Contains(errOut.String(), "its trace and timeline are not written") {
		t.Errorf("one hung run: exit %d, stderr:\n%s", code, errOut.String())
	}
}

func TestRunTimeoutFlag(t *testing.T) {
	if o, err := parseSimOptions([]string{"--seeds", "1-2"}, io.Discard); err != nil || o.runTimeout != 15*time.Minute {
		t.Errorf("default --run-timeout %v, %v; want 15m", o.runTimeout, err)
	}
	if o, err := parseSimOptions([]string{"--seeds", "1-2", "--run-timeout", "0"}, io.Discard); err != nil || o.runTimeout != 0 {
		t.Errorf("--run-timeout 0: %v, %v; want no limit", o.runTimeout, err)
	}
	if _, err := parseSimOptions([]string{"--seeds", "1-2", "--run-timeout", "-1s"}, io.Discard); err == nil ||
		err.Error() != "--run-timeout -1s: must not be negative (0: no limit)" {
		t.Errorf("--run-timeout -1s: %v; want an error", err)
	}
}

func TestProgressLine(t *testing.T) {
	now := time.Unix(0, 0)
	clock := func() time.Time { return now }
	var b bytes.Buffer
	p := newProgress(&b, true, 100, clock)
	now = now.Add(10 * time.Second)
	for i := 0; i < 20; i++ {
		p.completed(i != 3)
	}
	if got := b.String(); !strings.HasPrefix(got, "\r\033[Kprogress: 1/100 runs, 0 failed") {
		t.Errorf("first line %q", got)
	}
	b.Reset()
	now = now.Add(time.Second) // 21 done in 11s... after the next one
	p.completed(true)
	if got := b.String(); got != "\r\033[Kprogress: 21/100 runs, 1 failed, 1.9 runs/s, elapsed 11s, ETA 41s" {
		t.Errorf("line %q", got)
	}
	b.Reset()
	w := clearing{p, io.Discard}
	w.Write([]byte("x"))
	if b.String() != "\r\033[K" {
		t.Errorf("a write did not clear the line: %q", b.String())
	}
	b.Reset()
	p.finish()
	if !strings.HasSuffix(b.String(), "ETA 41s\n") {
		t.Errorf("finish: %q", b.String())
	}

	// Off a terminal: a line every ten seconds, none for a single run.
	b.Reset()
	now = time.Unix(0, 0)
	p = newProgress(&b, false, 10, clock)
	p.completed(true)
	now = now.Add(11 * time.Second)
	p.completed(false)
	p.completed(true)
	p.finish()
	if got := b.String(); strings.Count(got, "\n") != 2 || !strings.Contains(got, "2/10 runs, 1 failed") || !strings.Contains(got, "3/10 runs, 1 failed") {
		t.Errorf("log lines:\n%s", got)
	}
	b.Reset()
	p.finish() // nothing new since the last line
	if b.Len() != 0 {
		t.Errorf("finish repeated the last line: %q", b.String())
	}
	b.Reset()
	p = newProgress(&b, true, 1, clock)
	p.completed(true)
	p.finish()
	if b.Len() != 0 {
		t.Errorf("single run showed progress %q", b.String())
	}
}
