package checker

import (
	"strings"
	"testing"
)

func rv(holder string, id uint64, start, end string, confVer, version uint64, keys ...string) RegionView {
	r := RegionView{Holder: holder, ID: id, ConfVer: confVer, Version: version}
	if start != "" {
		r.Start = []byte(start)
	}
	if end != "" {
		r.End = []byte(end)
	}
	for _, k := range keys {
		r.Keys = append(r.Keys, []byte(k))
	}
	return r
}

func wantErr(t *testing.T, err error, subs ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want an error mentioning %q, got nil", subs)
	}
	for _, s := range subs {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error does not mention %q:\n%v", s, err)
		}
	}
}

func TestCheckNoOverlap(t *testing.T) {
	ok := []RegionView{
		rv("store 1", 3, "m", "", 1, 2),
		rv("store 1", 1, "", "c", 1, 1),
		rv("store 1", 2, "c", "f", 1, 1), // gaps are fine on a store
	}
	if err := CheckNoOverlap("store 1", ok); err != nil {
		t.Fatalf("valid regions: %v", err)
	}
	if err := CheckNoOverlap("store 1", nil); err != nil {
		t.Fatalf("no regions: %v", err)
	}
	wantErr(t, CheckNoOverlap("store 1", []RegionView{
		rv("store 1", 2, "a", "m", 1, 1),
		rv("store 1", 5, "k", "p", 1, 1),
	}), `store 1: region 2 ["a","m") overlaps region 5 ["k","p"): keys ["k","m") are in both`)
	// An unbounded region overlaps everything after it, not only its neighbour.
	wantErr(t, CheckNoOverlap("store 1", []RegionView{
		rv("store 1", 1, "a", "", 1, 1),
		rv("store 1", 2, "c", "d", 1, 1),
		rv("store 1", 3, "x", "z", 1, 1),
	}), `region 1 ["a",+inf) overlaps region 2 ["c","d")`, `region 1 ["a",+inf) overlaps region 3 ["x","z")`)
	wantErr(t, CheckNoOverlap("store 1", []RegionView{rv("store 1", 4, "q", "b", 1, 1)}),
		`region 4 ["q","b") has an empty or inverted range`)
	wantErr(t, CheckNoOverlap("store 1", []RegionView{
		rv("store 1", 4, "a", "b", 1, 1), rv("store 1", 4, "c", "d", 1, 1),
	}), "region 4 is listed more than once")
}

func TestCheckCoverage(t *testing.T) {
	ok := []RegionView{
		rv("pd", 5, "p", "", 1, 3),
		rv("pd", 1, "", "a", 1, 1),
		rv("pd", 2, "a", "p", 1, 2),
	}
	if err := CheckCoverage("pd", ok); err != nil {
		t.Fatalf("valid cover: %v", err)
	}
	if err := CheckCoverage("pd", []RegionView{rv("pd", 1, "", "", 1, 1)}); err != nil {
		t.Fatalf("single region: %v", err)
	}
	wantErr(t, CheckCoverage("pd", []RegionView{
		rv("pd", 1, "", "a", 1, 1), rv("pd", 2, "a", "m", 1, 1), rv("pd", 5, "p", "", 1, 1),
	}), `pd: gap between region 2 ["a","m") and region 5 ["p",+inf): keys ["m","p") have no region`)
	wantErr(t, CheckCoverage("pd", []RegionView{rv("pd", 2, "b", "", 1, 1)}),
		`pd: first region 2 ["b",+inf) does not start at "": keys ["","b") have no region`)
	wantErr(t, CheckCoverage("pd", []RegionView{rv("pd", 1, "", "m", 1, 1), rv("pd", 2, "m", "z", 1, 1)}),
		`pd: last region 2 ["m","z") does not end at +inf: keys ["z",+inf) have no region`)
	wantErr(t, CheckCoverage("pd", []RegionView{rv("pd", 1, "", "n", 1, 1), rv("pd", 2, "m", "", 1, 1)}),
		`pd: region 1 ["","n") overlaps region 2 ["m",+inf): keys ["m","n") are in both`)
	wantErr(t, CheckCoverage("pd", []RegionView{rv("pd", 1, "", "", 1, 1), rv("pd", 2, "m", "", 1, 1)}),
		`region 1 ["",+inf) overlaps region 2 ["m",+inf)`)
	wantErr(t, CheckCoverage("pd", nil), `pd: no regions: keys ["",+inf) have no region`)
	// Every problem is listed, not only the first.
	wantErr(t, CheckCoverage("pd", []RegionView{rv("pd", 1, "b", "c", 1, 1), rv("pd", 2, "d", "e", 1, 1)}),
		"does not start", "gap between", "does not end at +inf")
}

func TestCheckDataInRange(t *testing.T) {
	ok := []RegionView{
		rv("store 1", 1, "", "c", 1, 1, "", "a", "bzzz"),
		rv("store 1", 2, "c", "", 1, 1, "c", "zzz"),
		rv("pd", 2, "c", "", 1, 1),
	}
	if err := CheckDataInRange(ok); err != nil {
		t.Fatalf("valid data: %v", err)
	}
	wantErr(t, CheckDataInRange([]RegionView{
		rv("store 1", 1, "", "c", 1, 1, "a", "c"),
		rv("store 2", 2, "c", "", 1, 1, "b"),
	}), `store 1: region 1 ["","c") holds key "c" outside its range`,
		`store 2: region 2 ["c",+inf) holds key "b" outside its range`)
}

func TestCheckAgreement(t *testing.T) {
	pd := []RegionView{rv("pd", 1, "", "m", 2, 3), rv("pd", 2, "m", "", 1, 3)}
	stores := []RegionView{
		rv("store 1", 1, "", "m", 2, 3, "a"),
		rv("store 2", 2, "m", "", 1, 3),
		rv("store 3", 9, "x", "y", 1, 1), // unknown to PD: not judged
	}
	if err := CheckAgreement(pd, stores); err != nil {
		t.Fatalf("agreeing views: %v", err)
	}
	err := CheckAgreement(pd, []RegionView{
		rv("store 3", 2, "m", "", 1, 4),
		rv("store 1", 1, "", "k", 2, 3),
		rv("store 2", 1, "", "m", 2, 3),
	})
	wantErr(t, err,
		`store 1: region 1 ["","k") epoch {conf_ver 2, version 3} disagrees with pd: region 1 ["","m") epoch {conf_ver 2, version 3}`,
		`store 3: region 2 ["m",+inf) epoch {conf_ver 1, version 4} disagrees with pd: region 2 ["m",+inf) epoch {conf_ver 1, version 3}`)
	if strings.Contains(err.Error(), "store 2") {
		t.Errorf("store 2 agrees with pd but is reported: %v", err)
	}
	if i, j := strings.Index(err.Error(), "store 1"), strings.Index(err.Error(), "store 3"); i > j {
		t.Errorf("disagreements are not sorted by holder: %v", err)
	}
}

func TestEpochMonitor(t *testing.T) {
	var m EpochMonitor
	steps := []struct {
		holder           string
		id               uint64
		confVer, version uint64
		bad              string
	}{
		{"store 1", 1, 1, 1, ""},
		{"store 1", 1, 1, 1, ""}, // unchanged is fine
		{"store 1", 1, 2, 1, ""},
		{"store 1", 1, 2, 3, ""},
		{"store 2", 1, 1, 1, ""}, // holders are independent
		{"store 1", 2, 1, 1, ""}, // regions are independent
		{"store 1", 1, 1, 3, "store 1: region 1 epoch went backwards: conf_ver 2 -> 1, version 3 -> 3"},
		{"store 1", 1, 5, 2, "store 1: region 1 epoch went backwards: conf_ver 2 -> 5, version 3 -> 2"},
		{"store 1", 1, 2, 3, ""}, // a rejected observation is not remembered
		{"pd", 1, 2, 3, ""},
		{"pd", 1, 2, 2, "pd: region 1 epoch went backwards"},
	}
	for i, s := range steps {
		err := m.Observe(s.holder, s.id, s.confVer, s.version)
		if s.bad == "" {
			if err != nil {
				t.Fatalf("step %d: unexpected error: %v", i, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), s.bad) {
			t.Fatalf("step %d: want error %q, got %v", i, s.bad, err)
		}
	}
	m.Forget("store 1", 1)
	if err := m.Observe("store 1", 1, 1, 1); err != nil {
		t.Fatalf("after Forget: %v", err)
	}
}
