package main

import (
	"bytes"
	"context"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

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
	startWorker = func(ctx context.Context, extra []string) worker {
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
