package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

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
	for _, j := range o.jobs {
		got = append(got, fmt.Sprintf("%s/%d", j.s.Name, j.seed))
	}
	if want := []string{"static/2", "static/3", "static/4"}; !slices.Equal(got, want) || o.workers != 3 || !o.json {
		t.Errorf("jobs %v workers %d json %v; want %v, 3 workers, json", got, o.workers, o.json, want)
	}

	o, err = parseSimOptions([]string{"--seeds", "1-2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if all := scenarios.All(); len(o.jobs) != 2*len(all) || o.jobs[0].s.Name != all[0].Name || o.jobs[1].seed != 2 {
		t.Errorf("all scenarios, seeds 1-2: %d jobs, want %d, scenario by scenario", len(o.jobs), 2*len(all))
	}

	// One worker for one run, a traced run, or a count below 1.
	for _, args := range [][]string{
		{"--scenario", "static", "--seed", "1", "--workers", "4"},
		{"--scenario", "static", "--seed", "1", "--trace", "/tmp/x", "--workers", "4"},
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
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "scenario") || lines[3] != "2 runs, 1 failed" {
		t.Fatalf("table:\n%s", out.String())
	}
	if f := strings.Fields(lines[1]); !slices.Equal(f, []string{"static", "1", "ok", "10", "9", "1", "0", "4->6", "0", "2.0", "0.15", "20x", "00000000000000aa"}) {
		t.Errorf("row %q", lines[1])
	}
	if !strings.Contains(lines[2], "FAIL") {
		t.Errorf("failed row %q", lines[2])
	}
	want := "FAIL split seed 2: first\n  also: second\n" +
		"  replay: go run ./cmd/multiraft sim --scenario split --seed 2 --trace /tmp/split-2.trace\n"
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
	if s := errOut.String(); !strings.Contains(s, "  also: second\n  visualization: ") || !strings.HasSuffix(s, "/tmp/split-2.trace\n") {
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
