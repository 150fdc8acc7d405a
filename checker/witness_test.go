package checker

import (
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
