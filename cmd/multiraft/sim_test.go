package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
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
