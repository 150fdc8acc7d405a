package sim

import (
	"bytes"
	"flag"
	"os"
	"strings"
	"testing"
	"time"
)

// TestTimelineDoesNotChangeTheRun records a run with faults, splits and a
// failing check, and requires the trace hash of the run without a
// recorder; then checks the page shows what happened.
func TestTimelineDoesNotChangeTheRun(t *testing.T) {
	cfg := plantedBug()
	cfg.Store.SplitThreshold = 3 << 10
	cfg.Workload.Keys = 160
	cfg.Workload.ValueSize = 160
	cfg.Workload.Put = 60
	plain := Run(cfg, 3, nil)
	tl := NewTimeline()
	var trace bytes.Buffer
	rep := RunWith(cfg, 3, Options{Trace: &trace, Timeline: tl})
	if rep.TraceHash != plain.TraceHash || rep.Events != plain.Events {
		t.Fatalf("with a timeline: hash %s, %d events; without: %s, %d", rep.TraceHash, rep.Events, plain.TraceHash, plain.Events)
	}
	if rep.OK || rep.Splits == 0 {
		t.Fatalf("want a failing run with splits: ok %v, %d splits", rep.OK, rep.Splits)
	}

	var page bytes.Buffer
	if err := tl.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	html := page.String()
	for _, want := range []string{
		"<!DOCTYPE html>", "planted-bug", "FAIL", "not linearizable",
		"<svg", "leader s", // region bands with their leader
		"split r",             // split markers
		"isolated", "crashed", // node lanes
		"#2 isolate pd", "#5 crash s2", // fault effects by action index
		`✗ &#34;a000&#34;`, // the failing key ruled across
		"#e00000",          // and its operations
		"Fault actions", "restart s2",
	} {
		if !strings.Contains(html, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, banned := range []string{"http://", "https://", "<script src", "<link"} {
		if strings.Contains(strings.ReplaceAll(html, `xmlns="http://www.w3.org/2000/svg"`, ""), banned) {
			t.Errorf("page is not self-contained: has %q", banned)
		}
	}
	// Regions tile the keyspace at every moment: at the end, the last
	// segments of all regions cover "" to +inf once.
	covered := 0
	for _, rid := range tl.order {
		r := tl.regions[rid]
		last := r.segs[len(r.segs)-1]
		if last.to == tl.end {
			covered++
		}
	}
	if covered != rep.RegionsFinal {
		t.Errorf("%d regions reach the end of the timeline, PD has %d", covered, rep.RegionsFinal)
	}
}

func TestTimelineNeedsAFinishedRun(t *testing.T) {
	if err := NewTimeline().WriteHTML(&bytes.Buffer{}); err == nil {
		t.Error("an unfinished timeline wrote a page")
	}
	var nilTL *Timeline
	nilTL.mark(time.Second, "x", false) // a nil recorder records nothing
}

var timelineOut = flag.String("sim.timeline", "", "TestTimelineOfAFailure writes its page to `FILE`")

// TestTimelineOfAFailure draws the planted bug reduced by Shrink (see
// TestShrinkReducesThePlantedBug): with -sim.timeline FILE it writes the
// page, for a look at a failing run.
func TestTimelineOfAFailure(t *testing.T) {
	cfg := plantedBug()
	cfg.Clients = 2
	cfg.Duration = 12 * time.Second
	cfg.FaultEdits = FaultEdits{Skip: []int{0, 1, 3, 7, 8, 9, 10, 11, 12}, Retime: []Retime{{Index: 6, At: 11 * time.Second}}}
	tl := NewTimeline()
	rep := RunWith(cfg, 1, Options{Timeline: tl})
	if rep.OK {
		t.Fatal("the reduced planted bug passes")
	}
	var page bytes.Buffer
	if err := tl.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--faults-skip 0,1,3,7,8,9,10,11,12 --faults-at 6=11s", "(planned 13.000s)", "skipped"} {
		if !strings.Contains(page.String(), want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if *timelineOut != "" {
		if err := os.WriteFile(*timelineOut, page.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
