package simfs

import (
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"slices"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/multiraft/multiraft/core/rng"
)

// ErrCrashed is returned by every mutating operation of a FaultFS after its
// crash point (see CrashAfter).
var ErrCrashed = errors.New("simfs: crashed")

// ErrInjected is returned by a mutating operation that the error rate chose
// to fail (see SetErrorRate).
var ErrInjected = errors.New("simfs: injected disk error")

// FaultFS wraps a vfs.FS, fails its mutating operations on a seeded
// schedule, and tracks which state of each file and directory is synced, so
// that Crash can build crash images (see the package doc). The wrapped FS
// must be empty when wrapped and written only through the FaultFS from then
// on: the tracking sees nothing else.
//
// The mutating operations are the FS's Create, Link, OpenReadWrite, Remove,
// RemoveAll, Rename, ReuseForWrite, MkdirAll and Lock, and the Write,
// WriteAt, Preallocate, Sync, SyncData and SyncTo of its files and
// directories (a directory sync is a file Sync on OpenDir's file). Reads,
// Stat, List, Open, OpenDir and Close always pass through.
//
// A failed operation has no effect, except a Write or WriteAt: it may write
// a prefix of its bytes first (its length drawn from the rng), as a torn
// write does. Draws happen only when an operation is decided (an error rate
// above 0, or the crash point), so a FaultFS with neither draws nothing.
type FaultFS struct {
	fs vfs.FS
	r  *rng.Rand

	root      *node // the tracked disk
	untracked error // the first operation that root could not follow

	errRate  float64
	crashAt  int64 // ops at which the crash point is reached; -1 = never
	ops      int64
	failed   int64
	crashed  bool
	injected int64

	logging bool // log keeps every mutating operation (see LogOps)
	log     []Op
}

// Op is one mutating operation asked of a FaultFS, as its log (LogOps)
// records it, in the order asked. The log lets a test name each crash
// point of a multi-step disk operation: CrashAfter(i) lets the operations
// before log entry i through and fails entry i and all after it.
type Op struct {
	// Kind is create, link, open read-write, remove, remove all, rename,
	// reuse, mkdir, lock, write, preallocate, sync (of a file), sync dir
	// (a Sync on a file OpenDir opened) or sync to.
	Kind string
	Name string // the path it names: a rename's, link's or reuse's old name
	To   string // a rename's, link's or reuse's new name
	// Failed: the injector failed it (ErrCrashed or ErrInjected). A failed
	// write may still have written a prefix of its bytes.
	Failed bool
}

var _ vfs.FS = (*FaultFS)(nil)

// NewFaultFS wraps fs, which must be empty (a new vfs.NewMem will do: the
// FaultFS tracks synced state itself, so fs need not be crashable); r
// drives the injector.
func NewFaultFS(fs vfs.FS, r *rng.Rand) *FaultFS {
	return &FaultFS{fs: fs, r: r, crashAt: -1, root: newDir()}
}

// SetErrorRate makes each further mutating operation fail with ErrInjected
// with probability p (0 turns injection off).
func (f *FaultFS) SetErrorRate(p float64) { f.errRate = p }

// CrashAfter lets n more mutating operations through; the one after them
// and every later one fail with ErrCrashed. n < 0 disarms a crash point not
// reached yet.
func (f *FaultFS) CrashAfter(n int) {
	if n < 0 {
		f.crashAt = -1
		return
	}
	f.crashAt = f.ops + int64(n)
}

// Crashed reports whether the crash point was reached: some operation has
// failed with ErrCrashed.
func (f *FaultFS) Crashed() bool { return f.crashed }

// Ops counts the mutating operations attempted, failed ones included.
func (f *FaultFS) Ops() int64 { return f.ops }

// Failures counts the mutating operations that failed (ErrCrashed or
// ErrInjected).
func (f *FaultFS) Failures() int64 { return f.failed }

// Injected counts the failures drawn by the error rate.
func (f *FaultFS) Injected() int64 { return f.injected }

// LogOps starts a fresh log of mutating operations (on) or stops logging
// and drops the log (off). A FaultFS does not log unless asked.
func (f *FaultFS) LogOps(on bool) {
	f.logging, f.log = on, nil
}

// OpLog returns the operations logged since LogOps(true), oldest first.
func (f *FaultFS) OpLog() []Op { return slices.Clone(f.log) }

// Inner is the wrapped FS. Writing it directly goes around the tracking.
func (f *FaultFS) Inner() vfs.FS { return f.fs }

// admit counts one mutating operation and decides whether it fails.
func (f *FaultFS) admit(op, name string) error { return f.admitOp(Op{Kind: op, Name: name}) }

// admitOp is admit for an operation naming two paths.
func (f *FaultFS) admitOp(op Op) error {
	err := f.decide(op)
	if f.logging {
		op.Failed = err != nil
		f.log = append(f.log, op)
	}
	return err
}

func (f *FaultFS) decide(op Op) error {
	f.ops++
	if f.crashed || (f.crashAt >= 0 && f.ops > f.crashAt) {
		f.crashed = true
		f.failed++
		return fmt.Errorf("%s %s: %w", op.Kind, op.Name, ErrCrashed)
	}
	if f.errRate > 0 && f.r.Chance(f.errRate) {
		f.failed++
		f.injected++
		return fmt.Errorf("%s %s: %w", op.Kind, op.Name, ErrInjected)
	}
	return nil
}

// tornLen is how much of a failed write of n bytes reaches the file.
func (f *FaultFS) tornLen(n int) int {
	if n == 0 {
		return 0
	}
	return f.r.Intn(n + 1)
}

func (f *FaultFS) wrap(file vfs.File, name string, n *node) vfs.File {
	return &faultFile{File: file, fs: f, name: name, node: n}
}

// Create implements vfs.FS.
func (f *FaultFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	if err := f.admit("create", name); err != nil {
		return nil, err
	}
	file, err := f.fs.Create(name, category)
	if err != nil {
		return nil, err
	}
	return f.wrap(file, name, f.bindFile("create", name)), nil
}

// Link implements vfs.FS.
func (f *FaultFS) Link(oldname, newname string) error {
	if err := f.admitOp(Op{Kind: "link", Name: oldname, To: newname}); err != nil {
		return err
	}
	if err := f.fs.Link(oldname, newname); err != nil {
		return err
	}
	f.bind("link", newname, f.lookup(oldname))
	return nil
}

// Open implements vfs.FS.
func (f *FaultFS) Open(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	file, err := f.fs.Open(name, opts...)
	if err != nil {
		return nil, err
	}
	return f.wrap(file, name, f.opened("open", name)), nil
}

// OpenReadWrite implements vfs.FS.
func (f *FaultFS) OpenReadWrite(name string, category vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	if err := f.admit("open read-write", name); err != nil {
		return nil, err
	}
	file, err := f.fs.OpenReadWrite(name, category, opts...)
	if err != nil {
		return nil, err
	}
	n := f.lookup(name)
	if n == nil {
		n = f.bindFile("open read-write", name)
	}
	return f.wrap(file, name, n), nil
}

// OpenDir implements vfs.FS.
func (f *FaultFS) OpenDir(name string) (vfs.File, error) {
	file, err := f.fs.OpenDir(name)
	if err != nil {
		return nil, err
	}
	return f.wrap(file, name, f.opened("open dir", name)), nil
}

// Remove implements vfs.FS.
func (f *FaultFS) Remove(name string) error {
	if err := f.admit("remove", name); err != nil {
		return err
	}
	if err := f.fs.Remove(name); err != nil {
		return err
	}
	if f.unbind(name) == nil {
		f.lost("remove", name)
	}
	return nil
}

// RemoveAll implements vfs.FS.
func (f *FaultFS) RemoveAll(name string) error {
	if err := f.admit("remove all", name); err != nil {
		return err
	}
	if err := f.fs.RemoveAll(name); err != nil {
		return err
	}
	f.unbind(name)
	return nil
}

// Rename implements vfs.FS.
func (f *FaultFS) Rename(oldname, newname string) error {
	if err := f.admitOp(Op{Kind: "rename", Name: oldname, To: newname}); err != nil {
		return err
	}
	if err := f.fs.Rename(oldname, newname); err != nil {
		return err
	}
	f.bind("rename", newname, f.unbind(oldname))
	return nil
}

// ReuseForWrite implements vfs.FS. The tracking takes it to reuse oldname,
// as MemFS does: a rename, and the renamed file opened for writing.
func (f *FaultFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	if err := f.admitOp(Op{Kind: "reuse", Name: oldname, To: newname}); err != nil {
		return nil, err
	}
	file, err := f.fs.ReuseForWrite(oldname, newname, category)
	if err != nil {
		return nil, err
	}
	f.bind("reuse", newname, f.unbind(oldname))
	return f.wrap(file, newname, f.opened("reuse", newname)), nil
}

// MkdirAll implements vfs.FS.
func (f *FaultFS) MkdirAll(dir string, perm iofs.FileMode) error {
	if err := f.admit("mkdir", dir); err != nil {
		return err
	}
	if err := f.fs.MkdirAll(dir, perm); err != nil {
		return err
	}
	f.mkdirAll(dir)
	return nil
}

// Lock implements vfs.FS. Like Create, it leaves a new empty file at name.
func (f *FaultFS) Lock(name string) (io.Closer, error) {
	if err := f.admit("lock", name); err != nil {
		return nil, err
	}
	c, err := f.fs.Lock(name)
	if err != nil {
		return nil, err
	}
	f.bindFile("lock", name)
	return c, nil
}

// List implements vfs.FS.
func (f *FaultFS) List(dir string) ([]string, error) { return f.fs.List(dir) }

// Stat implements vfs.FS.
func (f *FaultFS) Stat(name string) (vfs.FileInfo, error) { return f.fs.Stat(name) }

// PathBase implements vfs.FS.
func (f *FaultFS) PathBase(p string) string { return f.fs.PathBase(p) }

// PathJoin implements vfs.FS.
func (f *FaultFS) PathJoin(elem ...string) string { return f.fs.PathJoin(elem...) }

// PathDir implements vfs.FS.
func (f *FaultFS) PathDir(p string) string { return f.fs.PathDir(p) }

// GetDiskUsage implements vfs.FS.
func (f *FaultFS) GetDiskUsage(p string) (vfs.DiskUsage, error) { return f.fs.GetDiskUsage(p) }

// Unwrap implements vfs.FS.
func (f *FaultFS) Unwrap() vfs.FS { return f.fs }

// faultFile is a file of a FaultFS, on a node of its tracked disk. It keeps
// the handle's offset, which Read and Write move, to know where a Write
// lands.
type faultFile struct {
	vfs.File
	fs   *FaultFS
	name string
	node *node
	pos  int
}

func (f *faultFile) Read(p []byte) (int, error) {
	n, err := f.File.Read(p)
	f.pos += n
	return n, err
}

func (f *faultFile) Write(p []byte) (int, error) {
	n, err := f.write(p, f.pos, f.File.Write)
	f.pos += n
	return n, err
}

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	return f.write(p, int(off), func(p []byte) (int, error) { return f.File.WriteAt(p, off) })
}

// write passes a write of p at off on to the wrapped file (do does it) and
// tracks the bytes that reach it. A failed write may write a prefix of p
// first.
func (f *faultFile) write(p []byte, off int, do func([]byte) (int, error)) (int, error) {
	failed := f.fs.admit("write", f.name)
	if failed != nil {
		p = p[:f.fs.tornLen(len(p))]
		if len(p) == 0 {
			return 0, failed
		}
	}
	w := f.node.write(p, off) // before do, which may modify p
	n, err := do(p)
	if err != nil || n < len(p) {
		f.node.unwrite(w, n)
	}
	if failed != nil {
		return n, failed
	}
	return n, err
}

func (f *faultFile) Preallocate(off, length int64) error {
	if err := f.fs.admit("preallocate", f.name); err != nil {
		return err
	}
	return f.File.Preallocate(off, length)
}

func (f *faultFile) Sync() error { return f.sync(f.File.Sync) }

func (f *faultFile) SyncData() error { return f.sync(f.File.SyncData) }

// sync passes a sync on (do does it) and, if it succeeds, makes the node's
// current state its synced state.
func (f *faultFile) sync(do func() error) error {
	kind := "sync"
	if f.node.dir {
		kind = "sync dir"
	}
	if err := f.fs.admit(kind, f.name); err != nil {
		return err
	}
	if err := do(); err != nil {
		return err
	}
	f.node.sync()
	return nil
}

// SyncTo syncs nothing in the tracking unless the wrapped file reports a
// full sync (MemFS never does).
func (f *faultFile) SyncTo(length int64) (bool, error) {
	if err := f.fs.admit("sync to", f.name); err != nil {
		return false, err
	}
	full, err := f.File.SyncTo(length)
	if err == nil && full {
		f.node.sync()
	}
	return full, err
}
