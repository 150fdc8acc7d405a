// Package simfs is the simulator's disk: a deterministic crash of a pebble
// crashable MemFS, and FaultFS, a vfs.FS wrapper that injects seeded errors
// and stops a store at a chosen operation (a crash in the middle of a write).
//
// # Crash
//
// pebble's MemFS.CrashClone keeps unsynced data at random, but it draws its
// random numbers while ranging over Go maps, so the same seed gives different
// images. Crash gives the same kind of image deterministically: every draw
// comes from the caller's rng.Rand, in sorted name order, depth first.
//
// The model, per directory entry and per file:
//
//   - A directory holds the entries that were there when it was last synced
//     (the synced binding of each name) and the entries it holds now (the live
//     binding). A name whose two bindings are the same file needs no
//     decision. Every other name (created, removed, renamed to or from, or
//     rebound by Create since the last directory sync) keeps its live binding
//     with probability keep% and otherwise its synced binding; either may be
//     "absent". So an unsynced create may vanish and an unsynced remove may be
//     undone, each name on its own (a rename's two names are decided apart).
//   - A file keeps the data it had at its last Sync. Each 4 KiB block of its
//     current data that differs from (or lies past the end of) that synced
//     data survives with probability keep%. A kept block past the synced
//     length grows the file, zero-filling the blocks in between that were not
//     kept, as pebble does. A file that shrank since its sync (it cannot on a
//     MemFS, but for completeness) takes its current length with keep%.
//
// With keep 0 the image is exactly the synced state (pebble's CrashClone with
// UnsyncedDataPercent 0); with 100 it is exactly the live state. pebble's
// CrashClone is looser in one way: it never drops a synced entry, so a rename
// or remove that was not synced leaves the old name behind even at 100%.
//
// The synced state of a file or directory that is not (yet) reachable
// through synced directory entries is not visible through the vfs.FS API, so
// Crash reads the MemFS tree with package reflect (read only). The layout it
// expects is that of pebble v2.1.7 (go.mod pins it); Crash returns an error,
// never a wrong image, if the layout changes.
package simfs

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/multiraft/multiraft/core/rng"
)

// BlockSize is the unit in which unsynced file data survives a crash.
const BlockSize = 4096

// Crash returns a new crashable MemFS holding a possible state of fs after a
// crash now: everything synced, and each unsynced directory entry and 4 KiB
// block of unsynced data with probability unsyncedKeepPercent/100, drawn from
// r in a fixed order. Every file and directory of the image is synced, so the
// image's synced state is its content. fs is not changed; it must have been
// made by vfs.NewCrashableMem (a plain MemFS does not track synced state).
func Crash(fs *vfs.MemFS, r *rng.Rand, unsyncedKeepPercent int) (*vfs.MemFS, error) {
	root, err := rootOf(fs)
	if err != nil {
		return nil, err
	}
	c := &crasher{r: r, keep: unsyncedKeepPercent, out: vfs.NewCrashableMem()}
	if err := c.dir(root, "/"); err != nil {
		return nil, err
	}
	return c.out, nil
}

type crasher struct {
	r    *rng.Rand
	keep int
	out  *vfs.MemFS
}

// survives draws whether one unsynced item survives. At 0 and 100 it draws
// nothing.
func (c *crasher) survives() bool {
	switch {
	case c.keep <= 0:
		return false
	case c.keep >= 100:
		return true
	}
	return c.r.Intn(100) < c.keep
}

// dir writes the crash image of directory node n at path p of the output
// (p exists already), recursing in sorted order, then syncs it.
func (c *crasher) dir(n memNode, p string) error {
	synced, live := n.entries("syncedChildren"), n.entries("children")
	names := make([]string, 0, len(live)+len(synced))
	for name := range live {
		names = append(names, name)
	}
	for name := range synced {
		if _, ok := live[name]; !ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		s, sok := synced[name]
		l, lok := live[name]
		var chosen memNode
		var ok bool
		switch {
		case sok && lok && s.id() == l.id():
			chosen, ok = l, true
		case c.survives():
			chosen, ok = l, lok
		default:
			chosen, ok = s, sok
		}
		if !ok {
			continue
		}
		child := c.out.PathJoin(p, name)
		if chosen.isDir() {
			if err := c.out.MkdirAll(child, 0o755); err != nil {
				return fmt.Errorf("simfs: crash image: mkdir %s: %w", child, err)
			}
			if err := c.dir(chosen, child); err != nil {
				return err
			}
			continue
		}
		if err := c.file(chosen, child); err != nil {
			return err
		}
	}
	d, err := c.out.OpenDir(p)
	if err != nil {
		return fmt.Errorf("simfs: crash image: open dir %s: %w", p, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("simfs: crash image: sync dir %s: %w", p, err)
	}
	return nil
}

// file writes the crash image of file node n at path p and syncs it.
func (c *crasher) file(n memNode, p string) error {
	synced, live := n.bytes("syncedData"), n.bytes("data")
	out := bytes.Clone(synced)
	for off := 0; off < len(live); off += BlockSize {
		block := live[off:min(off+BlockSize, len(live))]
		end := off + len(block)
		if end <= len(synced) && bytes.Equal(block, synced[off:end]) {
			continue // this block was synced as it is
		}
		if !c.survives() {
			continue
		}
		if grow := end - len(out); grow > 0 {
			out = append(out, make([]byte, grow)...)
		}
		copy(out[off:], block)
	}
	if len(live) < len(synced) && c.survives() {
		out = out[:len(live)]
	}
	f, err := c.out.Create(p, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("simfs: crash image: create %s: %w", p, err)
	}
	if len(out) > 0 {
		if _, err := f.Write(out); err != nil {
			f.Close()
			return fmt.Errorf("simfs: crash image: write %s: %w", p, err)
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("simfs: crash image: sync %s: %w", p, err)
	}
	return f.Close()
}

// memNode is a read-only view of a pebble *vfs.memNode.
type memNode struct{ v reflect.Value }

func (n memNode) id() uintptr         { return n.v.Pointer() }
func (n memNode) isDir() bool         { return n.v.Elem().FieldByName("isDir").Bool() }
func (n memNode) node() reflect.Value { return n.v.Elem() }

// entries reads a directory map field (children or syncedChildren).
func (n memNode) entries(field string) map[string]memNode {
	m := n.node().FieldByName(field)
	out := make(map[string]memNode, m.Len())
	if m.IsNil() {
		return out
	}
	it := m.MapRange()
	for it.Next() {
		out[it.Key().String()] = memNode{it.Value()}
	}
	return out
}

// bytes copies a data field (data or syncedData) of a file.
func (n memNode) bytes(field string) []byte {
	return bytes.Clone(n.node().FieldByName("mu").FieldByName(field).Bytes())
}

// rootOf checks that fs is a crashable MemFS laid out as expected and
// returns its root directory.
func rootOf(fs *vfs.MemFS) (memNode, error) {
	if fs == nil {
		return memNode{}, fmt.Errorf("simfs: crash of a nil MemFS")
	}
	v := reflect.ValueOf(fs).Elem()
	if err := checkLayout(v.Type()); err != nil {
		return memNode{}, err
	}
	if !v.FieldByName("crashable").Bool() {
		return memNode{}, fmt.Errorf("simfs: crash of a MemFS that does not track synced state (use vfs.NewCrashableMem)")
	}
	root := v.FieldByName("root")
	if root.IsNil() {
		return memNode{}, fmt.Errorf("simfs: crash of a MemFS with no root")
	}
	return memNode{root}, nil
}

func checkLayout(fsType reflect.Type) error {
	bad := func(what string) error {
		return fmt.Errorf("simfs: vfs.MemFS layout changed (%s); update simfs for this pebble version", what)
	}
	crashable, ok := fsType.FieldByName("crashable")
	if !ok || crashable.Type.Kind() != reflect.Bool {
		return bad("MemFS.crashable")
	}
	root, ok := fsType.FieldByName("root")
	if !ok || root.Type.Kind() != reflect.Pointer || root.Type.Elem().Kind() != reflect.Struct {
		return bad("MemFS.root")
	}
	nodePtr := root.Type
	node := nodePtr.Elem()
	if f, ok := node.FieldByName("isDir"); !ok || f.Type.Kind() != reflect.Bool {
		return bad("memNode.isDir")
	}
	for _, name := range []string{"children", "syncedChildren"} {
		f, ok := node.FieldByName(name)
		if !ok || f.Type.Kind() != reflect.Map || f.Type.Key().Kind() != reflect.String || f.Type.Elem() != nodePtr {
			return bad("memNode." + name)
		}
	}
	mu, ok := node.FieldByName("mu")
	if !ok || mu.Type.Kind() != reflect.Struct {
		return bad("memNode.mu")
	}
	for _, name := range []string{"data", "syncedData"} {
		f, ok := mu.Type.FieldByName(name)
		if !ok || f.Type.Kind() != reflect.Slice || f.Type.Elem().Kind() != reflect.Uint8 {
			return bad("memNode.mu." + name)
		}
	}
	return nil
}
