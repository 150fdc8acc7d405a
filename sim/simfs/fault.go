package simfs

import (
	"errors"
	"fmt"
	"io"
	iofs "io/fs"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/multiraft/multiraft/core/rng"
)

// ErrCrashed is returned by every mutating operation of a FaultFS after its
// crash point (see CrashAfter).
var ErrCrashed = errors.New("simfs: crashed")

// ErrInjected is returned by a mutating operation that the error rate chose
// to fail (see SetErrorRate).
var ErrInjected = errors.New("simfs: injected disk error")

// FaultFS wraps a vfs.FS and fails its mutating operations on a seeded
// schedule. The mutating operations are the FS's Create, Link,
// OpenReadWrite, Remove, RemoveAll, Rename, ReuseForWrite, MkdirAll and Lock,
// and the Write, WriteAt, Preallocate, Sync, SyncData and SyncTo of its
// files and directories (a directory sync is a file Sync on OpenDir's
// file). Reads, Stat, List, Open, OpenDir and Close always pass through.
//
// A failed operation has no effect, except a Write or WriteAt: it may write
// a prefix of its bytes first (its length drawn from the rng), as a torn
// write does. Draws happen only when an operation is decided (an error rate
// above 0, or the crash point), so a FaultFS with neither draws nothing.
type FaultFS struct {
	fs vfs.FS
	r  *rng.Rand

	errRate  float64
	crashAt  int64 // ops at which the crash point is reached; -1 = never
	ops      int64
	failed   int64
	crashed  bool
	injected int64
}

var _ vfs.FS = (*FaultFS)(nil)

// NewFaultFS wraps fs; r drives the injector.
func NewFaultFS(fs vfs.FS, r *rng.Rand) *FaultFS {
	return &FaultFS{fs: fs, r: r, crashAt: -1}
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

// Inner is the wrapped FS.
func (f *FaultFS) Inner() vfs.FS { return f.fs }

// admit counts one mutating operation and decides whether it fails.
func (f *FaultFS) admit(op, name string) error {
	f.ops++
	if f.crashed || (f.crashAt >= 0 && f.ops > f.crashAt) {
		f.crashed = true
		f.failed++
		return fmt.Errorf("%s %s: %w", op, name, ErrCrashed)
	}
	if f.errRate > 0 && f.r.Chance(f.errRate) {
		f.failed++
		f.injected++
		return fmt.Errorf("%s %s: %w", op, name, ErrInjected)
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

func (f *FaultFS) wrap(file vfs.File, name string, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f, name: name}, nil
}

// Create implements vfs.FS.
func (f *FaultFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	if err := f.admit("create", name); err != nil {
		return nil, err
	}
	file, err := f.fs.Create(name, category)
	return f.wrap(file, name, err)
}

// Link implements vfs.FS.
func (f *FaultFS) Link(oldname, newname string) error {
	if err := f.admit("link", newname); err != nil {
		return err
	}
	return f.fs.Link(oldname, newname)
}

// Open implements vfs.FS.
func (f *FaultFS) Open(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	file, err := f.fs.Open(name, opts...)
	return f.wrap(file, name, err)
}

// OpenReadWrite implements vfs.FS.
func (f *FaultFS) OpenReadWrite(name string, category vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	if err := f.admit("open read-write", name); err != nil {
		return nil, err
	}
	file, err := f.fs.OpenReadWrite(name, category, opts...)
	return f.wrap(file, name, err)
}

// OpenDir implements vfs.FS.
func (f *FaultFS) OpenDir(name string) (vfs.File, error) {
	file, err := f.fs.OpenDir(name)
	return f.wrap(file, name, err)
}

// Remove implements vfs.FS.
func (f *FaultFS) Remove(name string) error {
	if err := f.admit("remove", name); err != nil {
		return err
	}
	return f.fs.Remove(name)
}

// RemoveAll implements vfs.FS.
func (f *FaultFS) RemoveAll(name string) error {
	if err := f.admit("remove all", name); err != nil {
		return err
	}
	return f.fs.RemoveAll(name)
}

// Rename implements vfs.FS.
func (f *FaultFS) Rename(oldname, newname string) error {
	if err := f.admit("rename", oldname); err != nil {
		return err
	}
	return f.fs.Rename(oldname, newname)
}

// ReuseForWrite implements vfs.FS.
func (f *FaultFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	if err := f.admit("reuse", oldname); err != nil {
		return nil, err
	}
	file, err := f.fs.ReuseForWrite(oldname, newname, category)
	return f.wrap(file, newname, err)
}

// MkdirAll implements vfs.FS.
func (f *FaultFS) MkdirAll(dir string, perm iofs.FileMode) error {
	if err := f.admit("mkdir", dir); err != nil {
		return err
	}
	return f.fs.MkdirAll(dir, perm)
}

// Lock implements vfs.FS.
func (f *FaultFS) Lock(name string) (io.Closer, error) {
	if err := f.admit("lock", name); err != nil {
		return nil, err
	}
	return f.fs.Lock(name)
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

// faultFile is a file of a FaultFS.
type faultFile struct {
	vfs.File
	fs   *FaultFS
	name string
}

func (f *faultFile) Write(p []byte) (int, error) {
	if err := f.fs.admit("write", f.name); err != nil {
		n := f.fs.tornLen(len(p))
		if n > 0 {
			n, _ = f.File.Write(p[:n])
		}
		return n, err
	}
	return f.File.Write(p)
}

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.fs.admit("write", f.name); err != nil {
		n := f.fs.tornLen(len(p))
		if n > 0 {
			n, _ = f.File.WriteAt(p[:n], off)
		}
		return n, err
	}
	return f.File.WriteAt(p, off)
}

func (f *faultFile) Preallocate(off, length int64) error {
	if err := f.fs.admit("preallocate", f.name); err != nil {
		return err
	}
	return f.File.Preallocate(off, length)
}

func (f *faultFile) Sync() error {
	if err := f.fs.admit("sync", f.name); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *faultFile) SyncData() error {
	if err := f.fs.admit("sync", f.name); err != nil {
		return err
	}
	return f.File.SyncData()
}

func (f *faultFile) SyncTo(length int64) (bool, error) {
	if err := f.fs.admit("sync", f.name); err != nil {
		return false, err
	}
	return f.File.SyncTo(length)
}
