package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/multiraft/multiraft/core/buggify"
	"github.com/multiraft/multiraft/sim"
)

// The hook flags: --hooks names hooks (or all), --no-buggify turns them
// off, not both, an unknown name is refused; each reaches the runs'
// configuration and the replay flags; --list-hooks lists hooks and events.
func TestHookFlags(t *testing.T) {
	o, err := parseSimOptions([]string{"--scenario", "static", "--seed", "3", "--hooks", "split.apply.crash, sync.delay"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg := o.jobs.At(0).s.Config
	if want := []buggify.Point{buggify.SplitApplyCrash, buggify.SyncDelay}; len(cfg.Buggify.Force) != 2 ||
		cfg.Buggify.Force[0] != want[0] || cfg.Buggify.Force[1] != want[1] {
		t.Errorf("--hooks gave %v", cfg.Buggify.Force)
	}
	if got := strings.Join(o.overrides.args(), " "); got != "--hooks split.apply.crash,sync.delay" {
		t.Errorf("replay flags %q", got)
	}
	if o, err = parseSimOptions([]string{"--seed", "1", "--hooks", "all"}, io.Discard); err != nil || len(o.overrides.hooks) != int(buggify.NumPoints) {
		t.Errorf("--hooks all: %v, %d hooks", err, len(o.overrides.hooks))
	}
	if o, err = parseSimOptions([]string{"--scenario", "static", "--seed", "1", "--no-buggify"}, io.Discard); err != nil || !o.jobs.At(0).s.Config.Buggify.Off {
		t.Errorf("--no-buggify: %v", err)
	}
	for _, bad := range [][]string{{"--hooks", "no.such.hook"}, {"--hooks", "sync.delay", "--no-buggify"}} {
		if _, err := parseSimOptions(bad, io.Discard); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	var out bytes.Buffer
	if code := runSim([]string{"--list-hooks"}, &out, io.Discard); code != 0 {
		t.Fatalf("--list-hooks: exit %d", code)
	}
	for _, want := range []string{"split.propose.delay", "write.propose.repeat", "split.leader-change", "pd.operator-cancelled"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--list-hooks lacks %s", want)
		}
	}
}

// The coverage table adds runs up per event and hook, names the scenarios
// that reached an event, and marks the events no run reached.
func TestCoverageTable(t *testing.T) {
	c := newCoverage()
	c.add(&sim.Report{Scenario: "a", Coverage: map[string]uint64{"split.leader-change": 2, "session.repeat": 5},
		Hooks: &sim.HookReport{Enabled: []string{"sync.delay"}, Fired: map[string]uint64{"sync.delay": 3}}})
	c.add(&sim.Report{Scenario: "b", Coverage: map[string]uint64{"split.leader-change": 1}})
	var out bytes.Buffer
	c.print(&out)
	lines := map[string]string{}
	for _, l := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			lines[f[0]] = l
		}
	}
	for name, want := range map[string][]string{
		"split.leader-change": {"2", "100%", "3", "a 1, b 1"},
		"session.repeat":      {"1", "50%", "5", "a 1"},
		"snapshot.refused":    {"0", "NOT REACHED"},
		"sync.delay":          {"1", "1", "3"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[name], w) {
				t.Errorf("%s: %q lacks %q", name, lines[name], w)
			}
		}
	}
	if !strings.Contains(out.String(), "coverage over 2 runs of 2 scenarios") || !strings.Contains(out.String(), fmt.Sprintf("2 of %d events reached", buggify.NumEvents)) {
		t.Errorf("header or total:\n%s", out.String())
	}
}
