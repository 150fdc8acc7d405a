// Package simfs is the simulator's disk: FaultFS, a vfs.FS wrapper that
// injects seeded errors, stops a store at a chosen operation (a crash in the
// middle of a write) and tracks what of the disk is synced; and its Crash,
// which builds a deterministic crash image from that tracking.
//
// # Tracking
//
// A FaultFS keeps a model of the disk beside the FS it wraps. Directory
// entries bind names to nodes (inodes), so a file keeps its identity across
// renames and links, and a handle stays on the node it opened. Per file the
// model holds the data now and as of its last Sync (or SyncData, or a SyncTo
// that reports a full sync); per directory, the bindings now (the live
// bindings) and as of its last directory sync (the synced bindings), each
// name bound to a node or absent. The model follows each operation after
// the wrapped FS carried it out, resolving paths as MemFS does; a failed
// operation is taken to have changed nothing, except the bytes a write
// reports written. A write copies its bytes into the model too; a sync
// copies nothing (the synced data shares the current data until a write
// over synced bytes copies them).
//
// Only operations made through the FaultFS count, so the disk must be
// written through it alone, from empty (the simulator does so: each store
// sees its disk through its FaultFS). An operation that does not fit the
// model (a rename of a name it does not hold, say) shows that the disk was
// written behind its back; Crash then returns an error, never a wrong image.
// Nothing of this depends on pebble's internals: the model sees only calls
// of the vfs API.
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
//     kept, as pebble does. A file never shrinks: no operation truncates one
//     (Create and Lock bind a new, empty file).
//   - A file or directory bound under several names (a hard link) is decided
//     under each name on its own, and the image holds separate copies.
//
// CrashChoosing builds the same images with the unsynced directory entries
// chosen by the caller (UnsyncedEntries lists them), so that a test can go
// through every subset of them; with the operation log (FaultFS.LogOps) and
// CrashAfter it can stop a multi-step disk operation at each of its steps.
//
// With keep 0 the image is exactly the synced state (pebble's CrashClone with
// UnsyncedDataPercent 0); with 100 it is exactly the live state. pebble's
// CrashClone is looser in one way: it never drops a synced entry, so a rename
// or remove that was not synced leaves the old name behind even at 100%.
package simfs

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/multiraft/multiraft/core/rng"
)

// BlockSize is the unit in which unsynced file data survives a crash.
const BlockSize = 4096

// Crash returns a possible state of f's disk after a crash now: everything
// synced, and each unsynced directory entry and 4 KiB block of unsynced data
// with probability unsyncedKeepPercent/100, drawn from r in a fixed order.
// The image is a new FaultFS over a new MemFS, with every file and directory
// synced; after the image's draws, r.Fork() seeds its injector, and it has
// no error rate and no crash point. f is not changed.
func (f *FaultFS) Crash(r *rng.Rand, unsyncedKeepPercent int) (*FaultFS, error) {
	return f.CrashChoosing(r, unsyncedKeepPercent, nil)
}

// CrashChoosing is Crash with the unsynced directory entries chosen by the
// caller instead of drawn: keepEntry(path) says whether the entry at path
// (as UnsyncedEntries names it) keeps its live binding; otherwise it keeps
// its synced one. Unsynced file data still survives per 4 KiB block with
// probability unsyncedKeepPercent/100 (0 and 100 draw nothing). A nil
// keepEntry draws the entries too, which is Crash. With it a test can
// explore every subset of the entries a crash now decides, as ALICE and
// CrashMonkey do.
func (f *FaultFS) CrashChoosing(r *rng.Rand, unsyncedKeepPercent int, keepEntry func(path string) bool) (*FaultFS, error) {
	if f.untracked != nil {
		return nil, f.untracked
	}
	// The image is written through a FaultFS with no faults, which draws
	// nothing and tracks what it writes.
	c := &crasher{r: r, keep: unsyncedKeepPercent, keepEntry: keepEntry, out: NewFaultFS(vfs.NewMem(), nil)}
	if err := c.dir(f.root, "/"); err != nil {
		return nil, err
	}
	if c.out.untracked != nil {
		return nil, c.out.untracked
	}
	img := NewFaultFS(c.out.fs, r.Fork())
	img.root = c.out.root
	return img, nil
}

type crasher struct {
	r         *rng.Rand
	keep      int
	keepEntry func(path string) bool // decides unsynced entries, if set
	out       *FaultFS
}

// UnsyncedEntries lists the paths of the directory entries a crash now
// would decide (whose live and synced bindings differ), sorted. Under an
// undecided directory entry it lists the entries of both bindings that are
// directories, since either may be in the image.
func (f *FaultFS) UnsyncedEntries() []string {
	var out []string
	var walk func(n *node, p string)
	walk = func(n *node, p string) {
		names := make([]string, 0, len(n.entries)+len(n.syncedEntries))
		for name := range n.entries {
			names = append(names, name)
		}
		for name := range n.syncedEntries {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range slices.Compact(names) {
			s, sok := n.syncedEntries[name]
			l, lok := n.entries[name]
			child := f.PathJoin(p, name)
			if !(sok && lok && s == l) {
				out = append(out, child)
			}
			if lok && l.dir {
				walk(l, child)
			}
			if sok && s.dir && s != l {
				walk(s, child)
			}
		}
	}
	walk(f.root, "/")
	slices.Sort(out)
	return slices.Compact(out)
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

// dir writes the crash image of directory n at path p of the output (p
// exists already), recursing in sorted order, then syncs it.
func (c *crasher) dir(n *node, p string) error {
	names := make([]string, 0, len(n.entries)+len(n.syncedEntries))
	for name := range n.entries {
		names = append(names, name)
	}
	for name := range n.syncedEntries {
		if _, ok := n.entries[name]; !ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		s, sok := n.syncedEntries[name]
		l, lok := n.entries[name]
		var chosen *node
		var ok bool
		switch {
		case sok && lok && s == l:
			chosen, ok = l, true
		case c.keepEntry != nil:
			if c.keepEntry(c.out.PathJoin(p, name)) {
				chosen, ok = l, lok
			} else {
				chosen, ok = s, sok
			}
		case c.survives():
			chosen, ok = l, lok
		default:
			chosen, ok = s, sok
		}
		if !ok {
			continue
		}
		child := c.out.PathJoin(p, name)
		if chosen.dir {
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

// file writes the crash image of file n at path p and syncs it.
func (c *crasher) file(n *node, p string) error {
	synced, live := n.syncedData, n.data
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
