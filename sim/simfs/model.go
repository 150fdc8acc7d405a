package simfs

import (
	"bytes"
	"fmt"
	"maps"
	"strings"
)

// node is a file or a directory of the disk as a FaultFS tracks it: an
// inode. Directory entries bind names to nodes, so a file keeps its identity
// (and its synced data) across renames, and a handle stays on the node it
// opened.
type node struct {
	dir bool

	// A directory's bindings now, and as of its last directory sync (nil
	// before the first).
	entries, syncedEntries map[string]*node

	// A file's data now, and as of its last sync. After a sync syncedData
	// shares data's array (shared is set), so a sync copies nothing; a write
	// over the synced bytes copies them first.
	data, syncedData []byte
	shared           bool
}

func newDir() *node { return &node{dir: true, entries: map[string]*node{}} }

// sync makes the node's current state its synced state.
func (n *node) sync() {
	if n.dir {
		n.syncedEntries = maps.Clone(n.entries)
		return
	}
	n.syncedData = n.data[:len(n.data):len(n.data)]
	n.shared = true
}

// written is what a write changed in a file, to take back the part of it
// that did not reach the disk.
type written struct {
	off, size int    // where the write began; the file's size before it
	old       []byte // the bytes it overwrote
}

// write records a write of p at off: it overwrites, and extends the file,
// zero-filling any gap between the old end and off. It copies p, so the
// caller may hand p on to a File.Write, which may modify it.
func (n *node) write(p []byte, off int) written {
	w := written{off: off, size: len(n.data)}
	end := off + len(p)
	if off < len(n.data) {
		w.old = bytes.Clone(n.data[off:min(end, len(n.data))])
	}
	if n.shared && off < len(n.syncedData) {
		n.syncedData = bytes.Clone(n.syncedData)
		n.shared = false
	}
	if off > len(n.data) {
		n.data = append(n.data, make([]byte, off-len(n.data))...)
	}
	if end > len(n.data) {
		n.data = append(n.data[:off], p...)
	} else {
		copy(n.data[off:], p)
	}
	return w
}

// unwrite takes back the bytes of write w past its first done, which did
// not reach the disk.
func (n *node) unwrite(w written, done int) {
	if done < len(w.old) {
		copy(n.data[w.off+done:], w.old[done:])
	}
	size := w.size
	if done > 0 {
		size = max(size, w.off+done)
	}
	n.data = n.data[:size]
}

// splitPath splits a path into its elements as MemFS walks it: leading
// separators are dropped, "." alone is the root, a run of separators counts
// as one, and a trailing separator leaves an empty last element (which
// names the directory itself). There is always at least one element.
func splitPath(name string) []string {
	name = strings.TrimLeft(name, "/")
	if name == "." {
		name = ""
	}
	var parts []string
	for {
		i := strings.IndexByte(name, '/')
		if i < 0 {
			return append(parts, name)
		}
		parts = append(parts, name[:i])
		name = strings.TrimLeft(name[i+1:], "/")
	}
}

// parent resolves all but the last element of name to a directory of the
// model, and returns it with that last element.
func (f *FaultFS) parent(name string) (*node, string, bool) {
	parts := splitPath(name)
	d := f.root
	for _, p := range parts[:len(parts)-1] {
		c := d.entries[p]
		if c == nil || !c.dir {
			return nil, "", false
		}
		d = c
	}
	return d, parts[len(parts)-1], true
}

// lookup resolves name to a node of the model, or nil.
func (f *FaultFS) lookup(name string) *node {
	d, last, ok := f.parent(name)
	switch {
	case !ok:
		return nil
	case last == "":
		return d
	}
	return d.entries[last]
}

// lost records that the wrapped FS did an operation the model cannot
// follow: the disk was changed other than through f. Crash refuses from then
// on. It returns a node that belongs to no directory, for the handle the
// operation opened, if any.
func (f *FaultFS) lost(op, name string) *node {
	if f.untracked == nil {
		f.untracked = fmt.Errorf("simfs: %s %s succeeded but does not fit the tracked disk (was the disk written other than through its FaultFS?)", op, name)
	}
	return &node{}
}

// bindFile binds name to a new empty file and returns it.
func (f *FaultFS) bindFile(op, name string) *node {
	d, last, ok := f.parent(name)
	if !ok || last == "" {
		return f.lost(op, name)
	}
	n := &node{}
	d.entries[last] = n
	return n
}

// opened is the node a handle opened by op on name is on.
func (f *FaultFS) opened(op, name string) *node {
	if n := f.lookup(name); n != nil {
		return n
	}
	return f.lost(op, name)
}

// unbind removes name from its directory and returns what it was bound to,
// or nil.
func (f *FaultFS) unbind(name string) *node {
	d, last, ok := f.parent(name)
	if !ok || last == "" {
		return nil
	}
	n := d.entries[last]
	delete(d.entries, last)
	return n
}

// bind binds name to n, replacing whatever it was bound to.
func (f *FaultFS) bind(op, name string, n *node) {
	d, last, ok := f.parent(name)
	if !ok || last == "" || n == nil {
		f.lost(op, name)
		return
	}
	d.entries[last] = n
}

// mkdirAll adds the directories of name that are missing.
func (f *FaultFS) mkdirAll(name string) {
	d := f.root
	for _, p := range splitPath(name) {
		if p == "" {
			continue
		}
		c := d.entries[p]
		if c == nil {
			c = newDir()
			d.entries[p] = c
		}
		if !c.dir {
			f.lost("mkdir", name)
			return
		}
		d = c
	}
}
