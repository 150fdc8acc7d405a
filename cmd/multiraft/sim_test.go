package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/multiraft/multiraft/scenarios"
	"github.com/multiraft/multiraft/sim"
)

func TestSeedRange(t *testing.T) {
	for _, c := range []struct {
		one, rng string
		from, to uint64
		bad      bool
	}{
		{"", "", 1, 10, false},
		{"7", "", 7, 7, false},
		{"", "3-9", 3, 9, false},
		{"", "5", 5, 5, false},
		{"", "9-3", 0, 0, true},
		{"x", "", 0, 0, true},
		{"1", "1-2", 0, 0, true},
		{"", "a-b", 0, 0, true},
	} {
		from, to, err := seedRange(c.one, c.rng)
		if (err != nil) != c.bad || (!c.bad && (from != c.from || to != c.to)) {
			t.Errorf("seedRange(%q, %q) = %d, %d, %v", c.one, c.rng, from, to, err)
		}
	}
}

func TestSimCommandJSON(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := runSim([]string{"--scenario", "static", "--seed", "1", "--json"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var rep map[string]any
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, out.String())
	}
	for _, k := range []string{"scenario", "seed", "ok", "violation", "ops_total", "ops_ok", "ops_failed",
		"ops_ambiguous", "regions_initial", "regions_final", "leader_elect_ms_max", "sim_ms", "wall_ms", "trace_hash",
		"splits", "split_register_ms_max", "write_success_ratio"} {
		if _, ok := rep[k]; !ok {
			t.Errorf("report lacks %q", k)
		}
	}
	if rep["ok"] != true {
		t.Fatalf("static seed 1 failed: %v", rep["violation"])
	}
}

func TestSimCommandRejectsBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"--scenario", "nope"},
		{"--seeds", "5-1"},
		{"--seed", "1", "--seeds", "1-2"},
		{"--trace", "/tmp/x", "--seeds", "1-2"},
		{"--timeline", "/tmp/x", "--scenario", "static", "--seeds", "1-2"},
		{"--shrink", "--seed", "1"},
		{"--faults-skip", "a,b"},
		{"--faults-at", "7"},
		{"--clients", "-1"},
		{"stray"},
	} {
		var out, errOut bytes.Buffer
		if code := runSim(args, &out, &errOut); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
		if !strings.Contains(errOut.String(), "multiraft sim") && !strings.Contains(errOut.String(), "flag") {
			t.Errorf("%v: no error message: %q", args, errOut.String())
		}
	}
}

func TestParseSimOptions(t *testing.T) {
	o, err := parseSimOptions([]string{"--scenario", "static", "--seeds", "2-4", "--workers", "3", "--json"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := 0; i < o.jobs.Len(); i++ {
		j := o.jobs.At(i)
		got = append(got, fmt.Sprintf("%s/%d", j.s.Name, j.seed))
	}
	if want := []string{"static/2", "static/3", "static/4"}; !slices.Equal(got, want) || o.workers != 3 || !o.json {
		t.Errorf("jobs %v workers %d json %v; want %v, 3 workers, json", got, o.workers, o.json, want)
	}

	o, err = parseSimOptions([]string{"--seeds", "1-2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if all := scenarios.All(); o.jobs.Len() != 2*len(all) || o.jobs.At(0).s.Name != all[0].Name || o.jobs.At(1).seed != 2 ||
		o.jobs.At(2).s.Name != all[1].Name || o.jobs.At(2).seed != 1 {
		t.Errorf("all scenarios, seeds 1-2: %d jobs, want %d, scenario by scenario", o.jobs.Len(), 2*len(all))
	}

	// A sweep over many seeds is not stored run by run.
	o, err = parseSimOptions([]string{"--seeds", "1-100000", "--stop-on-failure"}, io.Discard)
	if err != nil || o.jobs.Len() != 100000*len(scenarios.All()) || !o.stopOnFailure {
		t.Errorf("--seeds 1-100000: %d jobs, stop %v, %v", o.jobs.Len(), o.stopOnFailure, err)
	}
	if j := o.jobs.At(o.jobs.Len() - 1); j.seed != 100000 || j.s.Name != scenarios.All()[len(scenarios.All())-1].Name {
		t.Errorf("last job %s/%d", j.s.Name, j.seed)
	}

	// Overrides reach every scenario's configuration, and back to flags.
	o, err = parseSimOptions([]string{"--scenario", "static-crash", "--seed", "3", "--clients", "2", "--duration", "15s",
		"--faults-skip", "5,3", "--faults-at", "7=12.5s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := o.jobs.At(0).s.Config
	if c.Clients != 2 || c.Duration != 15*time.Second || !slices.Equal(c.FaultEdits.Skip, []int{5, 3}) || len(c.FaultEdits.Retime) != 1 {
		t.Errorf("overrides not applied: clients %d duration %v edits %+v", c.Clients, c.Duration, c.FaultEdits)
	}
	if got := strings.Join(o.overrides.args(), " "); got != "--clients 2 --duration 15s --faults-skip 3,5 --faults-at 7=12.5s" {
		t.Errorf("override flags %q", got)
	}

	// One worker for one run, a traced run, or a count below 1.
	for _, args := range [][]string{
		{"--scenario", "static", "--seed", "1", "--workers", "4"},
		{"--scenario", "static", "--seed", "1", "--trace", "/tmp/x", "--workers", "4"},
		{"--scenario", "static", "--seed", "1", "--timeline", "/tmp/x", "--workers", "4"},
		{"--scenario", "static", "--seed", "1", "--shrink", "--workers", "4"},
		{"--scenario", "static", "--seeds", "1-2", "--workers", "0"},
	} {
		if o, err := parseSimOptions(args, io.Discard); err != nil || o.workers != 1 {
			t.Errorf("%v: workers %d, %v; want 1", args, o.workers, err)
		}
	}

	// --list checks nothing else.
	if o, err := parseSimOptions([]string{"--list", "--scenario", "nope", "--seeds", "5-1"}, io.Discard); err != nil || !o.list {
		t.Errorf("--list with bad flags: list %v, %v", o.list, err)
	}

	var errOut bytes.Buffer
	if _, err := parseSimOptions([]string{"--bogus"}, &errOut); !errors.Is(err, errFlagsReported) || !strings.Contains(errOut.String(), "bogus") {
		t.Errorf("--bogus: %v, printed %q", err, errOut.String())
	}
}

func TestPrinter(t *testing.T) {
	pass := &sim.Report{Scenario: "static", Seed: 1, OK: true, OpsTotal: 10, OpsOK: 9, OpsFailed: 1,
		RegionsInitial: 4, RegionsFinal: 6, SimMs: 2000, SimWallMs: 100, WallMs: 150, TraceHash: "00000000000000aa"}
	fail := &sim.Report{Scenario: "split", Seed: 2, Violation: "first", Violations: []string{"first", "second"}, TraceHash: "00000000000000bb"}

	var out, errOut bytes.Buffer
	p := &printer{stdout: &out, stderr: &errOut, outDir: t.TempDir()}
	p.header()
	p.workerRun(pass)
	p.workerRun(fail)
	p.summary()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 8 || !strings.HasPrefix(lines[0], "scenario") || lines[7] != "2 runs, 1 failed" {
		t.Fatalf("table:\n%s", out.String())
	}
	// The summary: per scenario, runs, failures, mean speed, failing seeds.
	if f := strings.Fields(lines[5]); !slices.Equal(f, []string{"static", "1", "0", "20x", "-"}) {
		t.Errorf("summary row %q", lines[5])
	}
	if f := strings.Fields(lines[6]); !slices.Equal(f, []string{"split", "1", "1", "-", "2"}) {
		t.Errorf("summary row %q", lines[6])
	}
	if f := strings.Fields(lines[1]); !slices.Equal(f, []string{"static", "1", "ok", "10", "9", "1", "0", "4->6", "0", "2.0", "0.15", "20x", "00000000000000aa"}) {
		t.Errorf("row %q", lines[1])
	}
	if !strings.Contains(lines[2], "FAIL") {
		t.Errorf("failed row %q", lines[2])
	}
	want := "FAIL split seed 2: first\n  also: second\n" +
		"  replay: go run ./cmd/multiraft sim --scenario split --seed 2 --trace /tmp/split-2.trace --timeline /tmp/split-2.html\n" +
		"  shrink: go run ./cmd/multiraft sim --scenario split --seed 2 --shrink\n"
	if errOut.String() != want {
		t.Errorf("stderr for a worker's failed run:\n%s\nwant:\n%s", errOut.String(), want)
	}
	if p.runs != 2 || p.failed != 1 {
		t.Errorf("counted %d runs, %d failed", p.runs, p.failed)
	}

	// A run made here also gets its visualization (here: the error that
	// there is nothing to visualize), between the violations and the replay.
	errOut.Reset()
	p.localRun(fail)
	if s := errOut.String(); !strings.Contains(s, "  also: second\n  visualization: ") || !strings.HasSuffix(s, "--seed 2 --shrink\n") {
		t.Errorf("stderr for a local failed run:\n%s", s)
	}

	out.Reset()
	p = &printer{stdout: &out, stderr: io.Discard, json: true}
	p.header()
	p.localRun(pass)
	p.summary()
	var rep sim.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || rep.TraceHash != pass.TraceHash || strings.Count(out.String(), "\n") != 1 {
		t.Errorf("JSON lines: %v\n%s", err, out.String())
	}
}

func TestSimCommandTimeline(t *testing.T) {
	if testing.Short() {
		t.Skip("two full runs")
	}
	path := filepath.Join(t.TempDir(), "run.html")
	hash := func(args ...string) string {
		var out, errOut bytes.Buffer
		if code := runSim(append([]string{"--scenario", "static-crash", "--seed", "2", "--json"}, args...), &out, &errOut); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut.String())
		}
		var rep sim.Report
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatal(err)
		}
		return rep.TraceHash
	}
	with, without := hash("--timeline", path), hash()
	if with != without {
		t.Errorf("trace hash %s with --timeline, %s without", with, without)
	}
	page, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(page, []byte("<svg")) || !bytes.Contains(page, []byte("static-crash")) || !bytes.Contains(page, []byte("crash s")) {
		t.Errorf("timeline page lacks the picture, the scenario or its crashes (%d bytes)", len(page))
	}
}

func TestShrinkOfAPassingRun(t *testing.T) {
	var out, errOut bytes.Buffer
	code := runSim([]string{"--scenario", "static", "--seed", "1", "--duration", "2s", "--shrink"}, &out, &errOut)
	if code != 0 || !strings.Contains(errOut.String(), "passes; nothing to reduce") {
		t.Errorf("exit %d: %s", code, errOut.String())
	}
}

func TestOverridesOfAReducedRun(t *testing.T) {
	base, _ := scenarios.Get("static-crash")
	cfg := base.Config
	cfg.Clients = 2
	cfg.FaultEdits = sim.FaultEdits{Skip: []int{9, 3}, Retime: []sim.Retime{{Index: 4, At: 7250 * time.Millisecond}}}
	got := strings.Join(overridesOf(false, base.Config, cfg).args(), " ")
	if got != "--clients 2 --faults-skip 3,9 --faults-at 4=7.25s" {
		t.Errorf("flags %q", got)
	}
	// They parse back to the same configuration.
	o, err := parseSimOptions(append([]string{"--scenario", "static-crash", "--seed", "1"}, strings.Fields(got)...), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	back := o.jobs.At(0).s.Config
	if back.Clients != 2 || back.Duration != base.Config.Duration || !slices.Equal(back.FaultEdits.Normalized().Skip, []int{3, 9}) ||
		!slices.Equal(back.FaultEdits.Retime, cfg.FaultEdits.Retime) {
		t.Errorf("parsed back: clients %d duration %v edits %+v", back.Clients, back.Duration, back.FaultEdits)
	}
}

// --swarm draws a mix per seed on the scenario's world: it is in the
// report, the same seed gives the same run, the overrides win over the
// draw, and the replay flags carry --swarm.
func TestSwarmFlag(t *testing.T) {
	o, err := parseSimOptions([]string{"--scenario", "split-and-move", "--seeds", "3-4", "--swarm", "--clients", "2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	a, b := o.jobs.At(0).s.Config, o.jobs.At(1).s.Config
	if a.Mix == "" || a.Mix == b.Mix {
		t.Fatalf("mixes of seeds 3 and 4: %q, %q", a.Mix, b.Mix)
	}
	if a.Clients != 2 || a.PerSeed != nil {
		t.Fatalf("clients %d (want the override, 2), per-seed resolved: %v", a.Clients, a.PerSeed == nil)
	}
	if a.Store.SplitThreshold != 3<<10 {
		t.Errorf("split threshold %d: --swarm changed the scenario's own", a.Store.SplitThreshold)
	}
	if got := strings.Join(o.overrides.args(), " "); got != "--swarm --clients 2" {
		t.Errorf("replay flags %q", got)
	}
	var out, errOut bytes.Buffer
	if code := runSim([]string{"--scenario", "static", "--seed", "5", "--swarm", "--duration", "5s", "--json", "--workers", "1"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s%s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), `"mix":"election`) {
		t.Errorf("the report has no mix: %s", out.String())
	}
	// The picture of a swarm run says what the seed drew.
	page := filepath.Join(t.TempDir(), "run.html")
	if code := runSim([]string{"--scenario", "swarm", "--seed", "5", "--duration", "5s", "--timeline", page}, io.Discard, io.Discard); code != 0 {
		t.Fatalf("swarm --timeline: exit %d", code)
	}
	if html, err := os.ReadFile(page); err != nil || !strings.Contains(string(html), "swarm mix: replicas") {
		t.Errorf("the timeline page has no mix (%v)", err)
	}
}
