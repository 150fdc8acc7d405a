package kv

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// ---------------------------------------------------------------- model

type modelItem struct {
	value   string
	version uint64
}

// model is the reference the map is checked against: a plain Go map.
type model map[string]modelItem

func (m model) clone() model {
	out := make(model, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (m model) sortedKeys() []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (m model) bytes() int64 {
	var n int64
	for k, v := range m {
		n += int64(len(k) + len(v.value))
	}
	return n
}

// scan is the model's Scan: start <= key < end (end "" = no bound), at most
// limit items (limit <= 0 = no limit), in key order.
func (m model) scan(start, end string, limit int) []Item {
	var out []Item
	for _, k := range m.sortedKeys() {
		if k < start || (end != "" && k >= end) {
			continue
		}
		if limit > 0 && len(out) >= limit {
			break
		}
		v := m[k]
		out = append(out, Item{Key: []byte(k), Value: []byte(v.value), Version: v.version})
	}
	return out
}

// checkEqual compares every observable of d with m.
func checkEqual(t interface {
	Helper()
	Fatalf(string, ...any)
}, what string, d *Data, m model) {
	t.Helper()
	if d.Len() != len(m) {
		t.Fatalf("%s: Len() = %d, model has %d keys", what, d.Len(), len(m))
	}
	if d.Bytes() != m.bytes() {
		t.Fatalf("%s: Bytes() = %d, model says %d", what, d.Bytes(), m.bytes())
	}
	var got []Item
	d.Ascend(func(it Item) bool {
		got = append(got, it)
		return true
	})
	want := m.scan("", "", 0)
	if err := sameItems(got, want); err != nil {
		t.Fatalf("%s: Ascend: %v", what, err)
	}
	for k, v := range m {
		it, ok := d.Get([]byte(k))
		if !ok || string(it.Value) != v.value || it.Version != v.version {
			t.Fatalf("%s: Get(%q) = %q v%d found=%v, model has %q v%d", what, k, it.Value, it.Version, ok, v.value, v.version)
		}
	}
}

func sameItems(got, want []Item) error {
	if len(got) != len(want) {
		return fmt.Errorf("got %d items %s, want %d %s", len(got), showItems(got), len(want), showItems(want))
	}
	for i := range got {
		if !bytes.Equal(got[i].Key, want[i].Key) || !bytes.Equal(got[i].Value, want[i].Value) || got[i].Version != want[i].Version {
			return fmt.Errorf("item %d: got %s, want %s (all: got %s, want %s)", i,
				showItems(got[i:i+1]), showItems(want[i:i+1]), showItems(got), showItems(want))
		}
	}
	return nil
}

func showItems(items []Item) string {
	var b strings.Builder
	b.WriteString("[")
	for i, it := range items {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%q=%q@%d", it.Key, it.Value, it.Version)
	}
	b.WriteString("]")
	return b.String()
}

// ---------------------------------------------------------------- rapid state machine

// keyGen draws keys from a small alphabet so that operations collide often;
// the empty key is included (the kv package allows it; stores refuse it).
var keyGen = rapid.StringOfN(rapid.RuneFrom([]rune("abc")), 0, 3, -1)

var valueGen = rapid.StringOfN(rapid.RuneFrom([]rune("xyz")), 0, 4, -1)

type machine struct {
	d *Data
	m model
	// snapshots taken with Clone, with the model at that moment: they must
	// never change whatever happens to d afterwards.
	clones  []*Data
	cloneMs []model
}

func (s *machine) put(t *rapid.T) {
	k, v := keyGen.Draw(t, "key"), valueGen.Draw(t, "value")
	got := s.d.Put([]byte(k), []byte(v))
	want := s.m[k].version + 1
	if got != want {
		t.Fatalf("Put(%q) returned version %d, want %d", k, got, want)
	}
	s.m[k] = modelItem{v, want}
}

func (s *machine) del(t *rapid.T) {
	k := keyGen.Draw(t, "key")
	_, existed := s.m[k]
	if got := s.d.Delete([]byte(k)); got != existed {
		t.Fatalf("Delete(%q) = %v, key existed: %v", k, got, existed)
	}
	delete(s.m, k)
	if v := s.d.Version([]byte(k)); v != 0 {
		t.Fatalf("Version(%q) after Delete = %d, want 0", k, v)
	}
}

func (s *machine) cas(t *rapid.T) {
	k, v := keyGen.Draw(t, "key"), valueGen.Draw(t, "value")
	cur := s.m[k].version
	// Mostly the right or a nearly right expectation; sometimes 0 (absent).
	expected := rapid.SampledFrom([]uint64{0, cur, cur, cur + 1, cur - min(cur, 1)}).Draw(t, "expected")
	ok, ver := s.d.CompareAndSwap([]byte(k), expected, []byte(v))
	if expected == cur {
		if !ok || ver != cur+1 {
			t.Fatalf("CAS(%q, expected %d) on version %d = (%v, %d), want (true, %d)", k, expected, cur, ok, ver, cur+1)
		}
		s.m[k] = modelItem{v, cur + 1}
		return
	}
	if ok || ver != cur {
		t.Fatalf("CAS(%q, expected %d) on version %d = (%v, %d), want (false, %d)", k, expected, cur, ok, ver, cur)
	}
}

func (s *machine) get(t *rapid.T) {
	k := keyGen.Draw(t, "key")
	it, ok := s.d.Get([]byte(k))
	mv, mok := s.m[k]
	if ok != mok || (ok && (string(it.Value) != mv.value || it.Version != mv.version || string(it.Key) != k)) {
		t.Fatalf("Get(%q) = (%q %q v%d, %v), model (%q v%d, %v)", k, it.Key, it.Value, it.Version, ok, mv.value, mv.version, mok)
	}
	if v := s.d.Version([]byte(k)); v != mv.version {
		t.Fatalf("Version(%q) = %d, model %d", k, v, mv.version)
	}
}

func (s *machine) scan(t *rapid.T) {
	start, end := keyGen.Draw(t, "start"), keyGen.Draw(t, "end")
	limit := rapid.IntRange(-1, 4).Draw(t, "limit")
	var endArg []byte
	if end != "" || rapid.Bool().Draw(t, "emptyNotNil") {
		endArg = []byte(end) // "" here is an empty, non-nil slice: also no bound
	}
	got := s.d.Scan([]byte(start), endArg, limit)
	if err := sameItems(got, s.m.scan(start, end, limit)); err != nil {
		t.Fatalf("Scan(%q, %q, %d): %v", start, end, limit, err)
	}
}

func (s *machine) splitOff(t *rapid.T) {
	at := keyGen.Draw(t, "at")
	left, right := model{}, model{}
	for k, v := range s.m {
		if k >= at {
			right[k] = v
		} else {
			left[k] = v
		}
	}
	r := s.d.SplitOff([]byte(at))
	checkEqual(t, fmt.Sprintf("left half after SplitOff(%q)", at), s.d, left)
	checkEqual(t, fmt.Sprintf("right half after SplitOff(%q)", at), r, right)
	// Continue with one half and set the other aside: the invariant checks
	// that writes to the kept half never leak into it.
	if rapid.Bool().Draw(t, "keepRight") {
		s.setAside(s.d, left)
		s.d, s.m = r, right
	} else {
		s.setAside(r, right)
		s.m = left
	}
}

func (s *machine) setAside(d *Data, m model) {
	s.clones = append(s.clones, d)
	s.cloneMs = append(s.cloneMs, m)
	if len(s.clones) > 4 {
		s.clones, s.cloneMs = s.clones[1:], s.cloneMs[1:]
	}
}

func (s *machine) clone(t *rapid.T) {
	c := s.d.Clone()
	checkEqual(t, "fresh clone", c, s.m)
	if rapid.Bool().Draw(t, "swap") {
		// Keep mutating the clone and set the original aside.
		s.setAside(s.d, s.m.clone())
		s.d = c
	} else {
		s.setAside(c, s.m.clone())
	}
}

func (s *machine) middleKey(t *rapid.T) {
	mk := s.d.MiddleKey()
	keys := s.m.sortedKeys()
	if len(keys) < 2 {
		if mk != nil {
			t.Fatalf("MiddleKey() = %q with %d keys, want nil", mk, len(keys))
		}
		return
	}
	if _, ok := s.m[string(mk)]; !ok || mk == nil {
		t.Fatalf("MiddleKey() = %q is not a key of the map %q", mk, keys)
	}
	if string(mk) <= keys[0] {
		t.Fatalf("MiddleKey() = %q is not above the smallest key %q: a split there leaves the left half empty", mk, keys[0])
	}
}

func (s *machine) check(t *rapid.T) {
	checkEqual(t, "map", s.d, s.m)
	for i, c := range s.clones {
		checkEqual(t, fmt.Sprintf("set-aside copy %d", i), c, s.cloneMs[i])
	}
}

func TestDataModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := &machine{d: New(), m: model{}}
		t.Repeat(map[string]func(*rapid.T){
			"Put":       s.put,
			"Delete":    s.del,
			"CAS":       s.cas,
			"Get":       s.get,
			"Scan":      s.scan,
			"SplitOff":  s.splitOff,
			"Clone":     s.clone,
			"MiddleKey": s.middleKey,
			"PutTwice":  s.putTwice,
			"":          s.check,
		})
	})
}

// putTwice writes one key twice in a row: the version must grow by exactly
// one each time and Bytes must count the value once.
func (s *machine) putTwice(t *rapid.T) {
	k := keyGen.Draw(t, "key")
	v1, v2 := valueGen.Draw(t, "v1"), valueGen.Draw(t, "v2")
	base := s.m[k].version
	if got := s.d.Put([]byte(k), []byte(v1)); got != base+1 {
		t.Fatalf("first Put(%q) = %d, want %d", k, got, base+1)
	}
	if got := s.d.Put([]byte(k), []byte(v2)); got != base+2 {
		t.Fatalf("second Put(%q) = %d, want %d", k, got, base+2)
	}
	s.m[k] = modelItem{v2, base + 2}
}

// ---------------------------------------------------------------- unit tests

func TestVersionsAndDelete(t *testing.T) {
	d := New()
	if v := d.Put([]byte("k"), []byte("a")); v != 1 {
		t.Fatalf("first Put version = %d, want 1", v)
	}
	if v := d.Put([]byte("k"), []byte("b")); v != 2 {
		t.Fatalf("second Put version = %d, want 2", v)
	}
	if !d.Delete([]byte("k")) {
		t.Fatal("Delete of a present key reported false")
	}
	if d.Delete([]byte("k")) {
		t.Fatal("Delete of an absent key reported true")
	}
	if v := d.Put([]byte("k"), []byte("c")); v != 1 {
		t.Fatalf("Put after Delete version = %d, want 1 (versions restart)", v)
	}
	if d.Bytes() != 2 || d.Len() != 1 {
		t.Fatalf("Bytes/Len = %d/%d, want 2/1", d.Bytes(), d.Len())
	}
}

func TestCompareAndSwap(t *testing.T) {
	d := New()
	if ok, v := d.CompareAndSwap([]byte("k"), 1, []byte("x")); ok || v != 0 {
		t.Fatalf("CAS expecting v1 on absent key = (%v, %d), want (false, 0)", ok, v)
	}
	if ok, v := d.CompareAndSwap([]byte("k"), 0, []byte("x")); !ok || v != 1 {
		t.Fatalf("CAS create-if-absent = (%v, %d), want (true, 1)", ok, v)
	}
	if ok, v := d.CompareAndSwap([]byte("k"), 0, []byte("y")); ok || v != 1 {
		t.Fatalf("CAS create-if-absent on present key = (%v, %d), want (false, 1)", ok, v)
	}
	if ok, v := d.CompareAndSwap([]byte("k"), 1, []byte("y")); !ok || v != 2 {
		t.Fatalf("CAS expecting current version = (%v, %d), want (true, 2)", ok, v)
	}
	if it, _ := d.Get([]byte("k")); string(it.Value) != "y" {
		t.Fatalf("value after CAS = %q, want y", it.Value)
	}
}

func TestSetCopiesAndNilValue(t *testing.T) {
	d := New()
	k, v := []byte("key"), []byte("val")
	d.Set(k, v, 7)
	k[0], v[0] = 'X', 'X'
	it, ok := d.Get([]byte("key"))
	if !ok || string(it.Value) != "val" || it.Version != 7 {
		t.Fatalf("Set did not copy its arguments: got %q %q v%d found=%v", it.Key, it.Value, it.Version, ok)
	}
	d.Put([]byte("n"), nil)
	it, ok = d.Get([]byte("n"))
	if !ok || it.Value == nil || len(it.Value) != 0 {
		t.Fatalf("Put with nil value: got %v found=%v, want an empty non-nil value", it.Value, ok)
	}
}

func TestScanBoundsAndLimit(t *testing.T) {
	d := New()
	for _, k := range []string{"a", "b", "c", "d"} {
		d.Put([]byte(k), []byte(k))
	}
	keys := func(items []Item) string {
		var ks []string
		for _, it := range items {
			ks = append(ks, string(it.Key))
		}
		return strings.Join(ks, ",")
	}
	cases := []struct {
		start, end string
		limit      int
		want       string
	}{
		{"", "", 0, "a,b,c,d"},
		{"b", "d", 0, "b,c"},
		{"b", "", 2, "b,c"},
		{"bb", "c", 0, ""},
		{"d", "a", 0, ""}, // reversed: nothing
		{"", "", -3, "a,b,c,d"},
		{"a", "z", 1, "a"},
	}
	for _, c := range cases {
		if got := keys(d.Scan([]byte(c.start), []byte(c.end), c.limit)); got != c.want {
			t.Errorf("Scan(%q, %q, %d) = %q, want %q", c.start, c.end, c.limit, got, c.want)
		}
	}
}

func TestMiddleKeySplitsBySize(t *testing.T) {
	d := New()
	if d.MiddleKey() != nil {
		t.Fatal("MiddleKey of an empty map is not nil")
	}
	d.Put([]byte("a"), nil)
	if d.MiddleKey() != nil {
		t.Fatal("MiddleKey of a one-key map is not nil")
	}
	// One big value first: the middle by size is right after it.
	d.Put([]byte("a"), bytes.Repeat([]byte("x"), 1000))
	for _, k := range []string{"b", "c", "d", "e"} {
		d.Put([]byte(k), []byte("1"))
	}
	if mk := string(d.MiddleKey()); mk != "b" {
		t.Fatalf("MiddleKey = %q, want b (the first key after half the bytes)", mk)
	}
	// Balanced sizes: the middle key sits in the middle.
	e := New()
	for _, k := range []string{"a", "b", "c", "d"} {
		e.Put([]byte(k), []byte("vv"))
	}
	if mk := string(e.MiddleKey()); mk != "c" {
		t.Fatalf("MiddleKey of 4 equal keys = %q, want c", mk)
	}
}

func TestSplitOffThenWriteBothHalves(t *testing.T) {
	d := New()
	for _, k := range []string{"a", "m", "z"} {
		d.Put([]byte(k), []byte("v"))
	}
	r := d.SplitOff([]byte("m"))
	r.Put([]byte("n"), []byte("w"))
	d.Put([]byte("b"), []byte("w"))
	if d.Len() != 2 || r.Len() != 3 {
		t.Fatalf("halves have %d and %d keys, want 2 and 3", d.Len(), r.Len())
	}
	if _, ok := d.Get([]byte("n")); ok {
		t.Fatal("a write to the right half shows in the left")
	}
	if d.Bytes() != 4 || r.Bytes() != 6 {
		t.Fatalf("Bytes of halves = %d, %d; want 4, 6", d.Bytes(), r.Bytes())
	}
}
