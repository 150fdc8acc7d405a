package simfs

import (
	"bytes"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"pgregory.net/rapid"

	"github.com/multiraft/multiraft/core/rng"
)

// refNode is the test's own model of a file or directory, kept apart from
// the FaultFS's tracking: data and bindings now, and as of the last sync.
type refNode struct {
	dir                    bool
	data, synced           []byte
	entries, syncedEntries map[string]*refNode
}

func newRefDir() *refNode { return &refNode{dir: true, entries: map[string]*refNode{}} }

// handle is an open file and the node it is on.
type handle struct {
	f   vfs.File
	n   *refNode
	pos int
}

// diskMachine drives a FaultFS through random operations, mirrors each in
// its reference model, and checks every crash image against it.
type diskMachine struct {
	fs      *FaultFS
	root    *refNode
	handles []*handle
	armed   bool
	calm    int // steps since the last crash
	stats   *diskStats
}

type diskStats struct{ steps, crashes, failed, tornWrites int }

var refNames = []string{"a", "b", "c"}

// entry is a name bound in the live tree.
type entry struct {
	path string
	n    *refNode
}

// live lists the live tree depth first (the root first), sorted.
func (m *diskMachine) live() []entry {
	out := []entry{{"/", m.root}}
	var walk func(d *refNode, p string)
	walk = func(d *refNode, p string) {
		for _, name := range slices.Sorted(maps.Keys(d.entries)) {
			n := d.entries[name]
			out = append(out, entry{path.Join(p, name), n})
			if n.dir {
				walk(n, path.Join(p, name))
			}
		}
	}
	walk(m.root, "/")
	return out
}

func (m *diskMachine) pick(t *rapid.T, label string, keep func(entry) bool) entry {
	var from []entry
	for _, e := range m.live() {
		if keep(e) {
			from = append(from, e)
		}
	}
	if len(from) == 0 {
		t.Skip("nothing to pick for " + label)
	}
	return rapid.SampledFrom(from).Draw(t, label)
}

func isDir(e entry) bool   { return e.n.dir }
func isFile(e entry) bool  { return !e.n.dir }
func notRoot(e entry) bool { return e.path != "/" }
func (m *diskMachine) dirOf(path string) *refNode {
	for _, e := range m.live() {
		if e.path == path {
			return e.n
		}
	}
	panic("no directory " + path)
}

// target draws a name in a live directory: a new path to bind.
func (m *diskMachine) target(t *rapid.T, label string) (*refNode, string, string) {
	d := m.pick(t, label+" dir", isDir)
	name := rapid.SampledFrom(refNames).Draw(t, label+" name")
	return d.n, name, path.Join(d.path, name)
}

// failed reports whether an operation failed (a fault of the FaultFS, or a
// refusal of MemFS: either way nothing changed), and counts it.
func (m *diskMachine) failed(err error) bool {
	if err != nil {
		m.stats.failed++
	}
	return err != nil
}

func (m *diskMachine) Mkdir(t *rapid.T) {
	d, name, p := m.target(t, "mkdir")
	if m.failed(m.fs.MkdirAll(p, 0o755)) {
		return
	}
	if n := d.entries[name]; n == nil {
		d.entries[name] = newRefDir()
	} else if !n.dir {
		t.Fatalf("mkdir %s over a file succeeded", p)
	}
}

func (m *diskMachine) Create(t *rapid.T) {
	d, name, p := m.target(t, "create")
	f, err := m.fs.Create(p, vfs.WriteCategoryUnspecified)
	if m.failed(err) {
		return
	}
	n := &refNode{}
	d.entries[name] = n
	m.open(&handle{f: f, n: n})
}

// open keeps a handle, closing the oldest beyond three.
func (m *diskMachine) open(h *handle) {
	m.handles = append(m.handles, h)
	if len(m.handles) > 3 {
		m.handles[0].f.Close()
		m.handles = m.handles[1:]
	}
}

func (m *diskMachine) OpenReadWrite(t *rapid.T) {
	e := m.pick(t, "open", isFile)
	f, err := m.fs.OpenReadWrite(e.path, vfs.WriteCategoryUnspecified)
	if m.failed(err) {
		return
	}
	h := &handle{f: f, n: e.n}
	// Reading moves the offset that the next Write starts at.
	buf := make([]byte, rapid.IntRange(0, 2*BlockSize).Draw(t, "read"))
	n, _ := f.Read(buf)
	h.pos = n
	m.open(h)
}

// Open opens a file read only: writes through it fail and change nothing.
func (m *diskMachine) Open(t *rapid.T) {
	e := m.pick(t, "open", isFile)
	f, err := m.fs.Open(e.path)
	if err != nil {
		t.Fatalf("open %s: %v", e.path, err)
	}
	m.open(&handle{f: f, n: e.n})
}

func (m *diskMachine) pickHandle(t *rapid.T) *handle {
	if len(m.handles) == 0 {
		t.Skip("no open file")
	}
	return rapid.SampledFrom(m.handles).Draw(t, "handle")
}

func drawData(t *rapid.T) []byte {
	return pattern(byte(rapid.IntRange(1, 255).Draw(t, "byte")), rapid.IntRange(0, 2*BlockSize+100).Draw(t, "length"))
}

// write mirrors a write of p at off (zero-filling a gap, as MemFS does even
// for an empty p).
func (n *refNode) write(p []byte, off int) {
	if len(n.data) < off+len(p) {
		n.data = append(n.data, make([]byte, off+len(p)-len(n.data))...)
	}
	copy(n.data[off:], p)
}

// wrote mirrors a write that wrote p at off: all of it, or (when it
// failed) a torn prefix, perhaps empty.
func (m *diskMachine) wrote(n *refNode, p []byte, off int, err error) {
	if m.failed(err) {
		if len(p) == 0 {
			return
		}
		m.stats.tornWrites++
	}
	n.write(p, off)
}

func (m *diskMachine) Write(t *rapid.T) {
	h := m.pickHandle(t)
	p := drawData(t)
	n, err := h.f.Write(bytes.Clone(p))
	m.wrote(h.n, p[:n], h.pos, err)
	h.pos += n
}

func (m *diskMachine) WriteAt(t *rapid.T) {
	h := m.pickHandle(t)
	p := drawData(t)
	off := len(h.n.data) - rapid.IntRange(-BlockSize, len(h.n.data)).Draw(t, "offset back")
	n, err := h.f.WriteAt(bytes.Clone(p), int64(off))
	m.wrote(h.n, p[:n], off, err)
}

func (m *diskMachine) Sync(t *rapid.T) {
	h := m.pickHandle(t)
	if !m.failed(h.f.Sync()) {
		h.n.synced = bytes.Clone(h.n.data)
	}
}

// SyncTo syncs nothing: MemFS never reports a full sync.
func (m *diskMachine) SyncTo(t *rapid.T) {
	h := m.pickHandle(t)
	full, err := h.f.SyncTo(int64(len(h.n.data)))
	if !m.failed(err) && full {
		t.Fatal("MemFS reported a full SyncTo")
	}
}

func (m *diskMachine) SyncDir(t *rapid.T) {
	e := m.pick(t, "sync dir", isDir)
	d, err := m.fs.OpenDir(e.path)
	if err != nil {
		t.Fatalf("open dir %s: %v", e.path, err)
	}
	defer d.Close()
	if !m.failed(d.Sync()) {
		e.n.syncedEntries = maps.Clone(e.n.entries)
	}
}

func (m *diskMachine) Rename(t *rapid.T) {
	src := m.pick(t, "rename", notRoot)
	d, name, p := m.target(t, "rename to")
	if p == src.path || strings.HasPrefix(p, src.path+"/") {
		t.Skip("rename into itself") // MemFS drops the source, then fails
	}
	if m.failed(m.fs.Rename(src.path, p)) {
		return
	}
	delete(m.dirOf(path.Dir(src.path)).entries, path.Base(src.path))
	d.entries[name] = src.n
}

func (m *diskMachine) Remove(t *rapid.T) {
	e := m.pick(t, "remove", notRoot)
	if m.failed(m.fs.Remove(e.path)) {
		return
	}
	if e.n.dir && len(e.n.entries) > 0 {
		t.Fatalf("remove of the non-empty directory %s succeeded", e.path)
	}
	delete(m.dirOf(path.Dir(e.path)).entries, path.Base(e.path))
}

func (m *diskMachine) Link(t *rapid.T) {
	src := m.pick(t, "link", isFile)
	d, name, p := m.target(t, "link to")
	if m.failed(m.fs.Link(src.path, p)) {
		return
	}
	d.entries[name] = src.n
}

func (m *diskMachine) Faults(t *rapid.T) {
	if m.armed {
		t.Skip("armed already")
	}
	m.armed = true
	if rapid.Bool().Draw(t, "crash point") {
		m.fs.CrashAfter(rapid.IntRange(0, 5).Draw(t, "crash after"))
		return
	}
	m.fs.SetErrorRate(0.2)
}

func drawKeep(t *rapid.T) int {
	keep := rapid.SampledFrom([]int{0, 100, -1}).Draw(t, "keep")
	if keep < 0 {
		keep = rapid.IntRange(1, 99).Draw(t, "keep %")
	}
	return keep
}

// Crash takes a crash image, checks it, and goes on with the image as the
// disk.
func (m *diskMachine) Crash(t *rapid.T) {
	if m.calm < 10 {
		t.Skip("crashed just now")
	}
	m.calm = 0
	m.stats.crashes++
	keep := drawKeep(t)
	img, err := m.fs.Crash(rng.New(rapid.Uint64().Draw(t, "crash seed")), keep)
	if err != nil {
		t.Fatalf("crash: %v", err)
	}
	got := dump(t, img)
	switch keep {
	case 0:
		if want := render(m.root, true); got != want {
			t.Fatalf("keep 0 image is not the synced state:\n%s---- want\n%s", got, want)
		}
	case 100:
		if want := render(m.root, false); got != want {
			t.Fatalf("keep 100 image is not the live state:\n%s---- want\n%s", got, want)
		}
	}
	if why := allowed(t, img, "/", m.root); why != "" {
		t.Fatalf("keep %d image is no crash state: %s\n---- image\n%s---- synced\n%s---- live\n%s",
			keep, why, got, render(m.root, true), render(m.root, false))
	}
	again, err := img.Crash(rng.New(rapid.Uint64().Draw(t, "again seed")), drawKeep(t))
	if err != nil {
		t.Fatalf("crash of the image: %v", err)
	}
	if dump(t, again) != got {
		t.Fatalf("the image is not fully synced: a crash of it changes it")
	}
	for _, h := range m.handles {
		h.f.Close()
	}
	m.handles = nil
	m.armed = false
	m.fs = img
	m.root = refOf(t, img, "/")
}

// Check compares the live disk, and the crash image that keeps nothing
// unsynced, with the reference model.
func (m *diskMachine) Check(t *rapid.T) {
	m.stats.steps++
	m.calm++
	if got, want := dump(t, m.fs), render(m.root, false); got != want {
		t.Fatalf("live disk differs from the reference:\n%s---- want\n%s", got, want)
	}
	img, err := m.fs.Crash(rng.New(0), 0)
	if err != nil {
		t.Fatalf("crash: %v", err)
	}
	if got, want := dump(t, img), render(m.root, true); got != want {
		t.Fatalf("synced state differs from the reference:\n%s---- want\n%s", got, want)
	}
}

// render is the state of the reference in dump's format: the synced state
// (reached through synced bindings) or the live one.
func render(root *refNode, synced bool) string {
	var b strings.Builder
	var walk func(d *refNode, p string)
	walk = func(d *refNode, p string) {
		entries := d.entries
		if synced {
			entries = d.syncedEntries
		}
		for _, name := range slices.Sorted(maps.Keys(entries)) {
			n, q := entries[name], path.Join(p, name)
			if n.dir {
				fmt.Fprintf(&b, "%s/\n", q)
				walk(n, q)
				continue
			}
			data := n.data
			if synced {
				data = n.synced
			}
			fmt.Fprintf(&b, "%s %d %x\n", q, len(data), data)
		}
	}
	walk(root, "/")
	return b.String()
}

// refOf reads a fully synced disk into a reference model.
func refOf(t tester, fs vfs.FS, p string) *refNode {
	d := newRefDir()
	names, err := fs.List(p)
	must(t, err)
	for _, name := range names {
		q := path.Join(p, name)
		st, err := fs.Stat(q)
		must(t, err)
		if st.IsDir() {
			d.entries[name] = refOf(t, fs, q)
			continue
		}
		data := readAll(t, fs, q)
		d.entries[name] = &refNode{data: data, synced: bytes.Clone(data)}
	}
	d.syncedEntries = maps.Clone(d.entries)
	return d
}

// allowed says why the image's directory p is not a crash state of the
// reference directory d, or "" if it is one: each name holds its synced or
// its live binding (the same file when they agree), and nothing else.
func allowed(t tester, img vfs.FS, p string, d *refNode) string {
	names, err := img.List(p)
	must(t, err)
	for _, name := range names {
		if d.entries[name] == nil && d.syncedEntries[name] == nil {
			return fmt.Sprintf("%s is invented", path.Join(p, name))
		}
	}
	all := slices.Sorted(maps.Keys(d.entries))
	for name := range d.syncedEntries {
		if d.entries[name] == nil {
			all = append(all, name)
		}
	}
	for _, name := range all {
		q := path.Join(p, name)
		s, l := d.syncedEntries[name], d.entries[name]
		st, err := img.Stat(q)
		if err != nil {
			if s != nil && l != nil {
				return fmt.Sprintf("%s is lost, yet it was bound when synced and is bound now", q)
			}
			continue
		}
		why := ""
		for _, c := range []*refNode{l, s} {
			if c == nil {
				continue
			}
			if why = holds(t, img, q, st.IsDir(), c); why == "" || s == l {
				break
			}
		}
		if why != "" {
			return why
		}
	}
	return ""
}

// holds says why the image's q is not a crash state of node c, or "".
func holds(t tester, img vfs.FS, q string, dir bool, c *refNode) string {
	switch {
	case dir != c.dir:
		return fmt.Sprintf("%s is of the wrong kind", q)
	case dir:
		return allowed(t, img, q, c)
	}
	if why := fileAllowed(readAll(t, img, q), c.synced, c.data); why != "" {
		return q + ": " + why
	}
	return ""
}

// fileAllowed says why got is not a crash state of a file synced as s and
// holding l now, or "": each 4 KiB block is the live one, or the synced
// bytes followed by zeros, and a file longer than s ends with a live block.
func fileAllowed(got, s, l []byte) string {
	if len(got) < len(s) || len(got) > max(len(s), len(l)) {
		return fmt.Sprintf("%d bytes, synced %d, live %d", len(got), len(s), len(l))
	}
	for off := 0; off < len(got); off += BlockSize {
		end := min(off+BlockSize, len(got))
		blk := got[off:end]
		if end <= len(l) && bytes.Equal(blk, l[off:end]) {
			continue
		}
		var synced []byte
		if off < len(s) {
			synced = s[off:min(end, len(s))]
		}
		rest := blk[len(synced):]
		if bytes.Equal(blk[:len(synced)], synced) && bytes.Count(rest, []byte{0}) == len(rest) {
			continue
		}
		return fmt.Sprintf("block at %d is neither live nor synced data", off)
	}
	if len(got) > len(s) {
		last := (len(got) - 1) / BlockSize * BlockSize
		if len(got) != min(last+BlockSize, len(l)) || !bytes.Equal(got[last:], l[last:len(got)]) {
			return "it grew past its synced length, but not by a live block"
		}
	}
	return ""
}

// TestCrashImagesAreCrashStates drives a disk through random creates,
// writes (torn ones too), syncs, renames, links, removes, directory syncs
// and injected faults, with the test's own model of what is synced beside
// it. Every crash image must be a state that model allows: synced data and
// bindings kept, each unsynced block and binding either kept or not, nothing
// invented; at keep 0 exactly the synced state, at 100 exactly the live
// one. Each image is then crashed again (it must not change: it is fully
// synced) and becomes the disk.
func TestCrashImagesAreCrashStates(t *testing.T) {
	stats := &diskStats{}
	rapid.Check(t, func(t *rapid.T) {
		m := &diskMachine{fs: NewFaultFS(vfs.NewMem(), rng.New(rapid.Uint64().Draw(t, "fault seed"))), root: newRefDir(), stats: stats}
		t.Repeat(map[string]func(*rapid.T){
			"Mkdir":         m.Mkdir,
			"Create":        m.Create,
			"OpenReadWrite": m.OpenReadWrite,
			"Open":          m.Open,
			"SyncTo":        m.SyncTo,
			"Write":         m.Write,
			"WriteAt":       m.WriteAt,
			"Sync":          m.Sync,
			"SyncDir":       m.SyncDir,
			"Rename":        m.Rename,
			"Remove":        m.Remove,
			"Link":          m.Link,
			"Faults":        m.Faults,
			"Crash":         m.Crash,
			"":              m.Check,
		})
	})
	t.Logf("%+v", *stats)
	if !t.Failed() && (stats.crashes == 0 || stats.failed == 0 || stats.tornWrites == 0) {
		t.Fatalf("the test missed a kind of event: %+v", *stats)
	}
}
