package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/multiraft/multiraft/core/buggify"
	"github.com/multiraft/multiraft/sim"
)

// coverage adds up, over a sweep, which coverage events its runs reached
// and which fault hooks they enabled and fired (--coverage).
type coverage struct {
	runs   int
	scens  []string                  // scenarios in the order they first appeared
	events map[string]*coverageCount // by event name
	hooks  map[string]*hookCount     // by hook name
}

// coverageCount is one event over the sweep: the runs that reached it,
// per scenario, and how often.
type coverageCount struct {
	runs    int
	count   uint64
	byScens map[string]int
}

// hookCount is one fault hook over the sweep.
type hookCount struct {
	enabled, firedRuns int
	fired              uint64
}

func newCoverage() *coverage {
	return &coverage{events: map[string]*coverageCount{}, hooks: map[string]*hookCount{}}
}

// add counts one run's report.
func (c *coverage) add(rep *sim.Report) {
	c.runs++
	if !slices.Contains(c.scens, rep.Scenario) {
		c.scens = append(c.scens, rep.Scenario)
	}
	for name, n := range rep.Coverage { // adding up: order does not matter
		e := c.events[name]
		if e == nil {
			e = &coverageCount{byScens: map[string]int{}}
			c.events[name] = e
		}
		e.runs++
		e.count += n
		e.byScens[rep.Scenario]++
	}
	if rep.Hooks == nil {
		return
	}
	for _, name := range rep.Hooks.Enabled {
		h := c.hooks[name]
		if h == nil {
			h = &hookCount{}
			c.hooks[name] = h
		}
		h.enabled++
		if n := rep.Hooks.Fired[name]; n > 0 {
			h.firedRuns++
			h.fired += n
		}
	}
}

// print writes the coverage table: every event (in the order core/buggify
// declares them) with the runs that reached it, how often, and the
// scenarios that reached it most; then every fault hook with the runs that
// enabled it and fired it.
func (c *coverage) print(out io.Writer) {
	fmt.Fprintf(out, "\ncoverage over %d runs of %d scenarios\n", c.runs, len(c.scens))
	fmt.Fprintf(out, "%-36s %6s %5s %9s  %s\n", "event", "runs", "%", "count", "scenarios (runs that reached it)")
	missed := 0
	for e := buggify.Event(0); e < buggify.NumEvents; e++ {
		ec := c.events[e.String()]
		if ec == nil {
			missed++
			fmt.Fprintf(out, "%-36s %6d %4.0f%% %9d  %s\n", e, 0, 0.0, 0, "NOT REACHED")
			continue
		}
		fmt.Fprintf(out, "%-36s %6d %4.0f%% %9d  %s\n", e, ec.runs, pct(ec.runs, c.runs), ec.count, topScenarios(ec.byScens, c.scens, 4))
	}
	fmt.Fprintf(out, "%d of %d events reached\n", int(buggify.NumEvents)-missed, buggify.NumEvents)
	fmt.Fprintf(out, "\n%-36s %8s %6s %9s\n", "fault hook", "enabled", "fired", "times")
	for p := buggify.Point(0); p < buggify.NumPoints; p++ {
		h := c.hooks[p.String()]
		if h == nil {
			h = &hookCount{}
		}
		fmt.Fprintf(out, "%-36s %8d %6d %9d\n", p, h.enabled, h.firedRuns, h.fired)
	}
}

func pct(n, of int) float64 {
	if of == 0 {
		return 0
	}
	return 100 * float64(n) / float64(of)
}

// topScenarios names the scenarios with the most runs in by (ties in the
// order of order), at most n of them, and how many more there are.
func topScenarios(by map[string]int, order []string, n int) string {
	names := slices.Clone(order)
	names = slices.DeleteFunc(names, func(s string) bool { return by[s] == 0 })
	slices.SortStableFunc(names, func(a, b string) int { return by[b] - by[a] })
	var parts []string
	for i, s := range names {
		if i == n {
			parts = append(parts, fmt.Sprintf("+%d more", len(names)-n))
			break
		}
		parts = append(parts, fmt.Sprintf("%s %d", s, by[s]))
	}
	return strings.Join(parts, ", ")
}

// listHooks prints the fault hooks and the coverage events.
func listHooks(out io.Writer) {
	fmt.Fprintln(out, "fault hooks (each enabled in a run with probability 0.25; chance to fire each pass):")
	for p := buggify.Point(0); p < buggify.NumPoints; p++ {
		fmt.Fprintf(out, "  %-36s %g\n", p, p.FireProb())
	}
	fmt.Fprintln(out, "coverage events:")
	for e := buggify.Event(0); e < buggify.NumEvents; e++ {
		fmt.Fprintf(out, "  %s\n", e)
	}
}
