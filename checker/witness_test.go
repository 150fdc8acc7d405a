package checker

import (
	"cmp"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/anishathalye/porcupine"
	"pgregory.net/rapid"
)

// The witness is sound: on any history, a key it proves linearizable is
// one porcupine does not find illegal. The histories are sequential ones
// with their intervals widened at random (so operations overlap, as
// concurrent clients' do) and, half the time, one read's result corrupted
// or one write's interval moved after a read of its value. The witness
// must also succeed on some: a check that always gave up would pass the
// first property.
func TestWitnessIsSound(t *testing.T) {
	proved, keys := 0, 0
	rapid.Check(t, func(t *rapid.T) {
		h := genSequentialHistory(t, false)
		for i := range h.Ops {
			op := &h.Ops[i]
			if op.Outcome == OutcomeFailed {
				continue
			}
			op.Call -= rapid.Int64Range(0, 30).Draw(t, "earlier")
			op.Return += rapid.Int64Range(0, 30).Draw(t, "later")
		}
		if rapid.Bool().Draw(t, "corrupt") {
			if !corruptRead(t, h, false) {
				return
			}
		}
		ops, _, err := convertHistory(h)
		if err != nil {
			t.Fatal(err)
		}
		parts, names := partitionByKey(ops)
		for i, part := range parts {
			keys++
			if !witness(part) {
				continue
			}
			proved++
			if res := porcupine.CheckOperations(newModel(), part); !res {
				t.Fatalf("witness proved key %q linearizable, porcupine finds it illegal: %v", names[i], part)
			}
		}
	})
	if proved == 0 || proved == keys {
		t.Fatalf("the witness proved %d of %d keys: it should prove some and not all (some are corrupted)", proved, keys)
	}
}

// A hot key read by many clients at once through a long partition, every
// operation open for most of the history: porcupine's search grows with
// the operations open at once; the witness proves it at once.
func TestWitnessProvesManyConcurrentReads(t *testing.T) {
	var h History
	h.Keys = []string{"k"}
	// 40 clients each read "k" for the whole span while writes go on in
	// sequence; each read sees the version current at its (late) end.
	const writes = 30
	for v := 1; v <= writes; v++ {
		h.Ops = append(h.Ops, Op{ClientID: 100, Kind: OpPut, Key: "k", Value: "w" + string(rune('a'+v)),
			Call: int64(v * 10), Return: int64(v*10 + 5), Version: uint64(v)})
	}
	for c := 0; c < 40; c++ {
		v := 1 + c%writes
		h.Ops = append(h.Ops, Op{ClientID: c, Kind: OpGet, Key: "k", Call: 0, Return: int64(v*10 + 8),
			Found: true, ResultValue: "w" + string(rune('a'+v)), Version: uint64(v)})
	}
	ops, _, err := convertHistory(h)
	if err != nil {
		t.Fatal(err)
	}
	if !witness(ops) {
		t.Fatal("the witness found no linearization of a linearizable history")
	}
	res := CheckLinearizable(h, 0)
	if !res.OK {
		t.Fatalf("check: %s", res.Violation)
	}
}

// A key with several lives (a delete ends one, a put or cas-if-absent
// starts the next): at a life's start more than one changer can follow,
// and the one due first is not always the right one. Here a long put (y)
// starts the second life, seen by a read early in its interval, and a
// short one (z) the third: taking z first, as the changer due first,
// leaves y's read without its state, and the witness must take y. Then a
// failed cas sees version 2 while a long delete stays open across lives:
// the delete must be placed late, not where the version-2 state would end
// too early for it.
func TestWitnessChainsTheLivesOfAKey(t *testing.T) {
	h := History{Keys: []string{"k"}, Ops: []Op{
		{ClientID: 1, Kind: OpPut, Key: "k", Value: "x", Call: 0, Return: 10, Version: 1},
		{ClientID: 1, Kind: OpDelete, Key: "k", Call: 20, Return: 30, Deleted: true},
		{ClientID: 2, Kind: OpPut, Key: "k", Value: "y", Call: 25, Return: 1000, Version: 1},
		{ClientID: 3, Kind: OpGet, Key: "k", Call: 40, Return: 50, Found: true, ResultValue: "y", Version: 1},
		{ClientID: 3, Kind: OpDelete, Key: "k", Call: 60, Return: 70, Deleted: true},
		{ClientID: 1, Kind: OpPut, Key: "k", Value: "z", Call: 35, Return: 80, Version: 1},
		{ClientID: 3, Kind: OpPut, Key: "k", Value: "z2", Call: 90, Return: 100, Version: 2},
		{ClientID: 4, Kind: OpDelete, Key: "k", Call: 85, Return: 400, Deleted: true},
		{ClientID: 3, Kind: OpCas, Key: "k", Value: "no", ExpectedVersion: 1, Call: 150, Return: 160, Version: 2},
		{ClientID: 3, Kind: OpGet, Key: "k", Call: 500, Return: 510},
	}}
	ops, _, err := convertHistory(h)
	if err != nil {
		t.Fatal(err)
	}
	if !porcupine.CheckOperations(newModel(), ops) {
		t.Fatal("porcupine finds the history not linearizable: the test's history is wrong")
	}
	if !witness(ops) {
		t.Fatal("the witness found no linearization of a linearizable history")
	}
}

// A write that returned a version no chain reaches makes the witness give
// up (porcupine finds the history illegal), however large the version.
func TestWitnessGivesUpOnAVersionNoChainReaches(t *testing.T) {
	h := History{Keys: []string{"k"}, Ops: []Op{
		put(1, "k", "x", 1, 0, 10),
		put(2, "k", "y", 1<<40, 20, 30),
	}}
	ops, _, err := convertHistory(h)
	if err != nil {
		t.Fatal(err)
	}
	if witness(ops) {
		t.Fatal("the witness proved a put of version 2^40 after one of version 1")
	}
	if r := CheckLinearizable(h, testTimeout); r.OK {
		t.Fatal("the check passed a put of version 2^40 after one of version 1")
	}
}

// Hot keys of two swarm runs, each a key with many short lives and a few
// operations open across a partition: swarm seed 6038's "h002" (1,864
// operations, 225 deletes) and seed 1613's "z000" (2,534 operations). The
// witness's search used to give up on both after 200,000 placements, and
// porcupine then took 177 s and 31 s to prove them. The testdata files hold
// the key's operations as the checker sees them (scans as gets of the key,
// values renamed).
func TestWitnessProvesSwarmHotKeys(t *testing.T) {
	for _, name := range []string{"swarm-6038-h002.json.gz", "swarm-1613-z000.json.gz"} {
		h := readGzipHistory(t, "testdata/"+name)
		ops, _, err := convertHistory(h)
		if err != nil {
			t.Fatal(err)
		}
		const steps = 10_000
		ok, n := witnessWithin(ops, steps)
		if !ok {
			t.Errorf("%s: the witness did not prove the key's %d operations in %d placements", name, len(ops), steps)
			continue
		}
		t.Logf("%s: %d operations proved in %d placements", name, len(ops), n)
	}
}

func readGzipHistory(t *testing.T, path string) History {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var h History
	if err := json.NewDecoder(zr).Decode(&h); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return h
}

// The witness is sound on concurrent histories too: clients issue
// operations one after another, each taking effect at a point inside its
// interval, some intervals long (a partition), so that keys have many
// lives with operations open across them. Half the time one or two
// operations are then changed (a result, a version, an interval moved).
// A history the witness proves must be one porcupine does not find
// illegal; and the witness must prove some of the changed ones and reject
// some (it proves most unchanged ones: it is not a check that gives up).
func TestWitnessIsSoundOnConcurrentHistories(t *testing.T) {
	var proved, provedChanged, rejectedChanged int
	rapid.Check(t, func(t *rapid.T) {
		h := genConcurrentHistory(t)
		changed := rapid.Bool().Draw(t, "change")
		if changed {
			changeOps(t, h)
		}
		ops, _, err := convertHistory(h)
		if err != nil {
			t.Skip("malformed")
		}
		if !witness(ops) {
			if changed && !porcupine.CheckOperations(newModel(), ops) {
				rejectedChanged++
			}
			return
		}
		proved++
		if changed {
			provedChanged++
		}
		if !porcupine.CheckOperations(newModel(), ops) {
			t.Fatalf("witness proved a history porcupine finds illegal: %v", h.Ops)
		}
	})
	if proved == 0 || provedChanged == 0 || rejectedChanged == 0 {
		t.Fatalf("the witness proved %d histories (%d changed) and rejected %d changed illegal ones: it should do all three", proved, provedChanged, rejectedChanged)
	}
}

// genConcurrentHistory draws a linearizable history of one key "k".
func genConcurrentHistory(t *rapid.T) History {
	type pending struct {
		op     Op
		effect int64
	}
	var all []pending
	clients := rapid.IntRange(1, 6).Draw(t, "clients")
	for c := range clients {
		now := rapid.Int64Range(0, 100).Draw(t, "start")
		for range rapid.IntRange(1, 8).Draw(t, "ops") {
			now += rapid.Int64Range(0, 20).Draw(t, "gap")
			long := int64(30)
			if rapid.IntRange(0, 9).Draw(t, "long") == 0 {
				long = 1000
			}
			d1, d2 := rapid.Int64Range(0, long).Draw(t, "before"), rapid.Int64Range(0, long).Draw(t, "after")
			op := Op{ClientID: c, Kind: OpKind(rapid.IntRange(int(OpGet), int(OpCas)).Draw(t, "kind")), Key: "k",
				Value: fmt.Sprintf("v%d", len(all)), Call: now, Return: now + d1 + d2}
			all = append(all, pending{op, now + d1})
			now = op.Return + 1
		}
	}
	slices.SortStableFunc(all, func(a, b pending) int { return cmp.Compare(a.effect, b.effect) })
	var st kvState
	ops := make([]Op, 0, len(all))
	for _, p := range all {
		op := p.op
		switch op.Kind {
		case OpGet:
			op.Found, op.ResultValue, op.Version = st.present, st.value, st.version
		case OpPut:
			st = kvState{present: true, value: op.Value, version: st.version + 1}
			op.Version = st.version
		case OpDelete:
			op.Deleted, st = st.present, kvState{}
		case OpCas:
			op.ExpectedVersion = st.version
			if !rapid.Bool().Draw(t, "cas ok") {
				op.ExpectedVersion = uint64(rapid.IntRange(0, 3).Draw(t, "expected"))
			}
			if op.ExpectedVersion == st.version {
				st = kvState{present: true, value: op.Value, version: st.version + 1}
				op.CasSucceeded = true
			}
			op.Version = st.version
		}
		ops = append(ops, op)
	}
	return History{Ops: ops, Keys: []string{"k"}}
}

// changeOps changes one or two operations of h: a read's result, a
// version, a flag, or an interval moved.
func changeOps(t *rapid.T, h History) {
	for range rapid.IntRange(1, 2).Draw(t, "changes") {
		op := &h.Ops[rapid.IntRange(0, len(h.Ops)-1).Draw(t, "victim")]
		other := h.Ops[rapid.IntRange(0, len(h.Ops)-1).Draw(t, "other")]
		switch rapid.IntRange(0, 4).Draw(t, "how") {
		case 0:
			op.Found, op.ResultValue, op.Version = other.Kind == OpPut || other.Kind == OpCas, other.Value, other.Version
		case 1:
			op.Version++
		case 2:
			op.Found, op.Deleted, op.CasSucceeded = !op.Found, !op.Deleted, !op.CasSucceeded
		case 3:
			d := rapid.Int64Range(-100, 100).Draw(t, "shift")
			op.Call, op.Return = op.Call+d, op.Return+d
		case 4:
			op.Call = op.Call + (op.Return-op.Call)/2
		}
	}
}

// A key the witness cannot prove costs it a bounded amount of work, not
// only a bounded number of placements: each placement passes over the
// key's operations. N puts and N deletes open at once, then a put of
// version 2 after them all: not linearizable (the key ends absent), and
// every branch of the search is alive until its last placement. With
// 2,001 operations, 200,000 placements took 4 s (a fuzzing review).
func TestWitnessWorkIsBounded(t *testing.T) {
	const n = 1000
	var h History
	for i := 0; i < n; i++ {
		h.Ops = append(h.Ops,
			Op{ClientID: i, Kind: OpPut, Key: "k", Value: "p" + strconv.Itoa(i), Call: 0, Return: 1000, Version: 1},
			Op{ClientID: n + i, Kind: OpDelete, Key: "k", Call: 0, Return: 1000, Deleted: true})
	}
	h.Ops = append(h.Ops, Op{ClientID: 2 * n, Kind: OpPut, Key: "k", Value: "late", Call: 2000, Return: 2001, Version: 2})
	h.Keys = []string{"k"}
	ops, _, err := convertHistory(h)
	if err != nil {
		t.Fatal(err)
	}
	ok, steps := witnessWithin(ops, witnessSteps)
	if ok {
		t.Fatal("the witness proved a history that is not linearizable")
	}
	// 50,000,000 of work over 2,001 operations: fewer than 25,000
	// placements (200,000 without the work bound).
	if steps >= 25_000 {
		t.Errorf("the witness made %d placements over %d operations before it gave up", steps, len(ops))
	}
}
