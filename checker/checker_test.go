package checker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const testTimeout = 10 * time.Second

func put(c int, k, v string, ver uint64, call, ret int64) Op {
	return Op{ClientID: c, Kind: OpPut, Key: k, Value: v, Version: ver, Call: call, Return: ret}
}

func get(c int, k string, found bool, v string, ver uint64, call, ret int64) Op {
	return Op{ClientID: c, Kind: OpGet, Key: k, Found: found, ResultValue: v, Version: ver, Call: call, Return: ret}
}

func del(c int, k string, deleted bool, call, ret int64) Op {
	return Op{ClientID: c, Kind: OpDelete, Key: k, Deleted: deleted, Call: call, Return: ret}
}

func cas(c int, k string, expected uint64, v string, ok bool, ver uint64, call, ret int64) Op {
	return Op{ClientID: c, Kind: OpCas, Key: k, ExpectedVersion: expected, Value: v,
		CasSucceeded: ok, Version: ver, Call: call, Return: ret}
}

func scan(c int, start, end string, limit int, pairs []Pair, call, ret int64) Op {
	return Op{ClientID: c, Kind: OpScan, ScanStart: start, ScanEnd: end, ScanLimit: limit,
		Pairs: pairs, Call: call, Return: ret}
}

func ambiguous(op Op) Op {
	op.Outcome = OutcomeAmbiguous
	op.Return = 0
	op.Found, op.ResultValue, op.Version, op.Deleted, op.CasSucceeded, op.Pairs = false, "", 0, false, false, nil
	return op
}

func failed(op Op) Op {
	op.Outcome = OutcomeFailed
	return op
}

var testKeys = []string{"a", "b", "c", "d", "x", "y"}

func TestLinearizableHistories(t *testing.T) {
	cases := []struct {
		name string
		ops  []Op
	}{
		{"empty", nil},
		{"concurrent put and gets", []Op{
			put(0, "x", "a", 1, 0, 10),
			get(1, "x", false, "", 0, 5, 15),
			get(2, "x", true, "a", 1, 6, 16),
			get(1, "x", true, "a", 1, 20, 30),
			put(0, "x", "b", 2, 40, 50),
			put(2, "x", "c", 3, 41, 49), // concurrent with b, which takes effect first
			get(1, "x", true, "c", 3, 60, 70),
		}},
		{"zero-length intervals", []Op{
			put(0, "x", "a", 1, 10, 10),
			get(1, "x", true, "a", 1, 10, 10),
		}},
		{"cas success and failure", []Op{
			put(0, "x", "a", 1, 0, 10),
			cas(0, "x", 1, "b", true, 2, 20, 30),
			cas(1, "x", 1, "c", false, 2, 40, 50),
			cas(0, "y", 0, "d", true, 1, 60, 70),
			cas(1, "y", 0, "e", false, 1, 80, 90),
			get(2, "x", true, "b", 2, 100, 110),
			get(2, "y", true, "d", 1, 100, 110),
		}},
		{"delete", []Op{
			put(0, "x", "a", 1, 0, 10),
			del(0, "x", true, 20, 30),
			get(1, "x", false, "", 0, 40, 50),
			del(1, "x", false, 60, 70),
			put(0, "x", "b", 1, 80, 90),
			cas(0, "x", 1, "c", true, 2, 100, 110),
		}},
		{"scan across keys", []Op{
			put(0, "a", "a1", 1, 0, 10),
			put(1, "b", "b1", 1, 0, 10),
			put(2, "c", "c1", 1, 0, 10),
			scan(0, "a", "c", 0, []Pair{{"a", "a1", 1}, {"b", "b1", 1}}, 20, 30),
			scan(1, "", "", 2, []Pair{{"a", "a1", 1}, {"b", "b1", 1}}, 20, 30),
			put(2, "d", "d1", 1, 40, 60),
			scan(0, "b", "", 0, []Pair{{"b", "b1", 1}, {"c", "c1", 1}}, 45, 55),
			scan(1, "b", "", 0, []Pair{{"b", "b1", 1}, {"c", "c1", 1}, {"d", "d1", 1}}, 45, 55),
			del(2, "a", true, 70, 80),
			scan(0, "", "", 0, []Pair{{"b", "b1", 1}, {"c", "c1", 1}, {"d", "d1", 1}}, 90, 100),
		}},
		{"ambiguous write later visible", []Op{
			put(0, "x", "a", 1, 0, 10),
			ambiguous(put(0, "x", "b", 0, 20, 0)),
			get(1, "x", true, "a", 1, 30, 40),
			get(1, "x", true, "b", 2, 50, 60),
			put(0, "x", "c", 3, 70, 80),
		}},
		{"ambiguous write never seen", []Op{
			put(0, "x", "a", 1, 0, 10),
			ambiguous(put(0, "x", "b", 0, 20, 0)),
			ambiguous(cas(0, "x", 5, "q", false, 0, 25, 0)),
			ambiguous(del(0, "y", false, 26, 0)),
			put(1, "x", "c", 2, 100, 110),
			get(1, "x", true, "c", 2, 120, 130),
		}},
		{"failed ops and ambiguous reads are ignored", []Op{
			put(0, "x", "a", 1, 0, 10),
			failed(put(0, "x", "z", 7, 20, 30)),
			ambiguous(get(1, "x", true, "nonsense", 9, 20, 0)),
			ambiguous(scan(1, "", "", 0, []Pair{{"x", "nonsense", 9}}, 20, 0)),
			get(1, "x", true, "a", 1, 40, 50),
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := CheckLinearizable(History{Ops: tc.ops, Keys: testKeys}, testTimeout)
			if !r.OK || r.Verdict != VerdictOK || r.Violation != "" {
				t.Fatalf("want ok, got verdict %q:\n%s", r.Verdict, r.Violation)
			}
		})
	}
}

func TestViolations(t *testing.T) {
	cases := []struct {
		name     string
		ops      []Op
		keys     []string // want FailedKeys
		contains []string // want in Violation
	}{
		{"stale read", []Op{
			put(0, "x", "a", 1, 0, 10),
			put(0, "x", "b", 2, 20, 30),
			get(1, "x", true, "a", 1, 40, 50),
		}, []string{"x"}, []string{`key "x"`, `get("x") -> "a"@v1`}},
		{"lost write", []Op{
			put(0, "y", "a", 1, 0, 10),
			get(1, "x", false, "", 0, 0, 10),
			get(1, "y", false, "", 0, 20, 30),
		}, []string{"y"}, []string{`key "y"`}},
		{"cas against wrong version", []Op{
			put(0, "x", "a", 1, 0, 10),
			put(0, "x", "b", 2, 20, 30),
			cas(1, "x", 1, "c", true, 2, 40, 50),
		}, []string{"x"}, []string{`cas("x", expect v1, "c")`}},
		{"scan misses a key written before it", []Op{
			put(0, "a", "a1", 1, 0, 10),
			put(0, "b", "b1", 1, 0, 10),
			scan(1, "a", "z", 0, []Pair{{"a", "a1", 1}}, 20, 30),
		}, []string{"b"}, []string{`key "b"`, "part of scan"}},
		{"limited scan stops short", []Op{
			put(0, "a", "a1", 1, 0, 10),
			put(0, "b", "b1", 1, 0, 10),
			scan(1, "", "", 2, []Pair{{"a", "a1", 1}}, 20, 30),
		}, []string{"b"}, []string{`key "b"`}},
		{"scan returns a deleted key", []Op{
			put(0, "b", "b1", 1, 0, 10),
			del(0, "b", true, 20, 30),
			scan(1, "", "", 0, []Pair{{"b", "b1", 1}}, 40, 50),
		}, []string{"b"}, []string{`key "b"`}},
		{"wrong put version", []Op{
			put(0, "x", "a", 1, 0, 10),
			put(0, "x", "b", 3, 20, 30),
		}, []string{"x"}, []string{`put("x", "b") -> v3`}},
		{"wrong delete report", []Op{
			del(0, "x", true, 0, 10),
		}, []string{"x"}, []string{"no operation can be linearized first"}},
		{"ambiguous write visible then gone", []Op{
			put(0, "x", "a", 1, 0, 10),
			ambiguous(put(0, "x", "b", 0, 20, 0)),
			get(1, "x", true, "b", 2, 30, 40),
			get(1, "x", true, "a", 1, 50, 60),
		}, []string{"x"}, nil},
		{"two keys fail", []Op{
			put(0, "x", "a", 1, 0, 10),
			get(1, "x", false, "", 0, 20, 30),
			put(0, "y", "a", 1, 0, 10),
			get(1, "y", false, "", 0, 20, 30),
		}, []string{"x", "y"}, []string{`key "x"`, `other keys that are not linearizable either: "y"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := CheckLinearizable(History{Ops: tc.ops, Keys: testKeys}, testTimeout)
			if r.OK || r.Verdict != VerdictIllegal {
				t.Fatalf("want illegal, got verdict %q ok=%v", r.Verdict, r.OK)
			}
			if strings.Join(r.FailedKeys, ",") != strings.Join(tc.keys, ",") {
				t.Errorf("FailedKeys = %q, want %q", r.FailedKeys, tc.keys)
			}
			for _, s := range tc.contains {
				if !strings.Contains(r.Violation, s) {
					t.Errorf("violation does not mention %q:\n%s", s, r.Violation)
				}
			}
			t.Logf("%s", r.Violation)
		})
	}
}

func TestMalformedScanResults(t *testing.T) {
	base := []Op{put(0, "a", "a1", 1, 0, 10), put(0, "b", "b1", 1, 0, 10)}
	cases := []struct {
		name string
		scan Op
		want string
	}{
		{"unsorted", scan(1, "", "", 0, []Pair{{"b", "b1", 1}, {"a", "a1", 1}}, 20, 30),
			`keys are not sorted: "a" comes after "b"`},
		{"duplicate", scan(1, "", "", 0, []Pair{{"a", "a1", 1}, {"a", "a1", 1}, {"b", "b1", 1}}, 20, 30),
			`key "a" is returned twice`},
		{"outside range", scan(1, "b", "c", 0, []Pair{{"a", "a1", 1}, {"b", "b1", 1}}, 20, 30),
			`key "a" is outside the range ["b","c")`},
		{"over limit", scan(1, "", "", 1, []Pair{{"a", "a1", 1}, {"b", "b1", 1}}, 20, 30),
			"2 pairs exceed the limit of 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ops := append(append([]Op(nil), base...), tc.scan)
			r := CheckLinearizable(History{Ops: ops, Keys: testKeys}, testTimeout)
			if r.OK || r.Verdict != VerdictIllegal {
				t.Fatalf("want illegal, got %q", r.Verdict)
			}
			if !strings.Contains(r.Violation, tc.want) || !strings.Contains(r.Violation, "op #2") {
				t.Errorf("violation should mention op #2 and %q:\n%s", tc.want, r.Violation)
			}
		})
	}
}

func TestMalformedHistory(t *testing.T) {
	cases := map[string]Op{
		"returns before call": put(0, "x", "a", 1, 10, 5),
		"negative client":     put(-1, "x", "a", 1, 0, 5),
		"unknown kind":        {Kind: OpKind(42), Call: 0, Return: 1},
		"unknown outcome":     {Kind: OpGet, Outcome: Outcome(9), Call: 0, Return: 1},
		"negative limit":      scan(0, "", "", -1, nil, 0, 1),
	}
	for name, op := range cases {
		t.Run(name, func(t *testing.T) {
			r := CheckLinearizable(History{Ops: []Op{op}}, testTimeout)
			if r.OK || r.Verdict != VerdictMalformed || !strings.Contains(r.Violation, "op #0") {
				t.Fatalf("want malformed naming op #0, got %q: %s", r.Verdict, r.Violation)
			}
			if err := r.WriteVisualization(filepath.Join(t.TempDir(), "v.html"), nil); err == nil {
				t.Fatalf("WriteVisualization of a malformed history should fail")
			}
		})
	}
}

func TestOpsCountsExpandedScans(t *testing.T) {
	ops := []Op{
		put(0, "a", "a1", 1, 0, 10),
		failed(put(0, "b", "b1", 1, 0, 10)),
		ambiguous(get(0, "a", false, "", 0, 0, 0)),
		scan(1, "a", "d", 0, []Pair{{"a", "a1", 1}}, 20, 30), // a, b, c
		scan(1, "", "", 1, []Pair{{"a", "a1", 1}}, 20, 30),   // a only
	}
	r := CheckLinearizable(History{Ops: ops, Keys: testKeys}, testTimeout)
	if !r.OK {
		t.Fatalf("want ok: %s", r.Violation)
	}
	if r.Ops != 5 {
		t.Fatalf("Ops = %d, want 5", r.Ops)
	}
}

func TestWriteVisualization(t *testing.T) {
	ops := []Op{
		put(0, "x", "a", 1, 0, 10),
		put(0, "x", "b", 2, 20, 30),
		ambiguous(put(2, "x", "c", 0, 25, 0)),
		get(1, "x", true, "a", 1, 40, 50),
		get(1, "y", false, "", 0, 40, 50),
	}
	r := CheckLinearizable(History{Ops: ops, Keys: testKeys}, testTimeout)
	if r.OK {
		t.Fatalf("want a failing history")
	}
	path := filepath.Join(t.TempDir(), "history.html")
	ann := []Annotation{{At: 15, Node: "network", Text: "partition"}, {At: 35, Node: "store 2", Text: "crash store 2"}}
	if err := r.WriteVisualization(path, ann); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) == 0 || !strings.Contains(string(data), "<html") || !strings.Contains(string(data), "crash store 2") {
		t.Fatalf("visualization looks wrong (%d bytes)", len(data))
	}
	// Annotating one visualization must not leak into the next.
	path2 := filepath.Join(t.TempDir(), "again.html")
	if err := r.WriteVisualization(path2, nil); err != nil {
		t.Fatal(err)
	}
	data2, err := os.ReadFile(path2)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data2), "crash store 2") {
		t.Fatalf("annotations leaked between visualizations")
	}
	if err := r.WriteVisualization(filepath.Join(t.TempDir(), "no", "such", "dir.html"), nil); err == nil ||
		!strings.Contains(err.Error(), "checker: write visualization") {
		t.Fatalf("want a wrapped error for an unwritable path, got %v", err)
	}
}

func TestViolationIsDeterministic(t *testing.T) {
	ops := []Op{
		put(0, "x", "a", 1, 0, 10),
		put(1, "x", "b", 2, 5, 15),
		put(2, "x", "c", 3, 6, 16),
		get(1, "x", true, "a", 1, 40, 50),
		get(2, "y", true, "zz", 1, 40, 50),
	}
	first := CheckLinearizable(History{Ops: ops, Keys: testKeys}, testTimeout).Violation
	for range 20 {
		if v := CheckLinearizable(History{Ops: ops, Keys: testKeys}, testTimeout).Violation; v != first {
			t.Fatalf("violation text differs between runs:\n%s\n---\n%s", first, v)
		}
	}
}

// An operation that returns at the instant it is called must not be widened:
// the get at t=11 comes strictly after the put at [10,10].
func TestInstantOpsAreNotWidened(t *testing.T) {
	ops := []Op{
		put(0, "x", "a", 1, 10, 10),
		get(1, "x", false, "", 0, 11, 11),
	}
	if r := CheckLinearizable(History{Ops: ops}, testTimeout); r.Verdict != VerdictIllegal {
		t.Fatalf("want illegal, got %q", r.Verdict)
	}
}

// A write applied twice (a retry or a duplicate applied again instead of
// answered from its session) shows up: the key's version moves one step
// more than the writes that were made. One operation with several attempts
// is one entry in the history, so the second application is visible.
func TestDoubleApplyIsAViolation(t *testing.T) {
	ops := []Op{
		put(0, "x", "a", 1, 0, 10),
		get(1, "x", true, "a", 2, 20, 30), // the put applied again: version 2, same value
	}
	r := CheckLinearizable(History{Ops: ops, Keys: testKeys}, testTimeout)
	if r.OK {
		t.Fatal("a put applied twice was taken for linearizable")
	}
	// A put whose retry was answered from the stored result: one
	// application, linearizable.
	ops[1] = get(1, "x", true, "a", 1, 20, 30)
	if r := CheckLinearizable(History{Ops: ops, Keys: testKeys}, testTimeout); !r.OK {
		t.Fatalf("a put applied once: %s", r.Violation)
	}
	// A cas applied twice: the second would fail its expected version, or
	// (after a put in between) succeed where it must not.
	ops = []Op{
		put(0, "y", "p", 1, 0, 10),
		cas(1, "y", 1, "q", true, 2, 20, 30),
		put(0, "y", "r", 3, 40, 50),
		cas(2, "y", 3, "s", true, 4, 60, 70),
		get(1, "y", true, "q", 5, 80, 90), // the first cas applied again
	}
	if r := CheckLinearizable(History{Ops: ops, Keys: testKeys}, testTimeout); r.OK {
		t.Fatal("a cas applied twice was taken for linearizable")
	}
}
