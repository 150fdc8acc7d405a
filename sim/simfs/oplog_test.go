package simfs

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/multiraft/multiraft/core/rng"
)

// checkpointLike does the steps of a checkpoint on fs: write and sync a
// temporary file, rename it, create a new log, sync the directory, remove
// the old files.
func checkpointLike(fs *FaultFS) error {
	f, err := fs.Create("/d/ckpt.tmp", vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	if _, err := f.Write([]byte("checkpoint")); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	f.Close()
	if err := fs.Rename("/d/ckpt.tmp", "/d/ckpt-2"); err != nil {
		return err
	}
	w, err := fs.Create("/d/wal-2", vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	w.Close()
	d, err := fs.OpenDir("/d")
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		return err
	}
	d.Close()
	if err := fs.Remove("/d/ckpt-1"); err != nil {
		return err
	}
	return fs.Remove("/d/wal-1")
}

func oldFiles(t *testing.T, seed uint64) *FaultFS {
	fs := newDisk(seed)
	must(t, fs.MkdirAll("/d", 0o755))
	syncDir(t, fs, "/")
	must(t, writeFile(t, fs, "/d/ckpt-1", []byte("old"), true).Close())
	must(t, writeFile(t, fs, "/d/wal-1", []byte("log"), true).Close())
	syncDir(t, fs, "/d")
	return fs
}

func TestOpLog(t *testing.T) {
	fs := oldFiles(t, 1)
	fs.LogOps(true)
	must(t, checkpointLike(fs))
	var got []string
	for _, op := range fs.OpLog() {
		s := op.Kind + " " + op.Name
		if op.To != "" {
			s += " -> " + op.To
		}
		got = append(got, s)
	}
	want := []string{
		"create /d/ckpt.tmp", "write /d/ckpt.tmp", "sync /d/ckpt.tmp",
		"rename /d/ckpt.tmp -> /d/ckpt-2", "create /d/wal-2", "sync dir /d",
		"remove /d/ckpt-1", "remove /d/wal-1",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("op log:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// CrashAfter(i) fails log entry i and every later one.
	for i := range want {
		fs := oldFiles(t, 1)
		fs.LogOps(true)
		fs.CrashAfter(i)
		if err := checkpointLike(fs); !errors.Is(err, ErrCrashed) {
			t.Fatalf("CrashAfter(%d): %v", i, err)
		}
		log := fs.OpLog()
		if len(log) != i+1 || !log[i].Failed || slices.ContainsFunc(log[:i], func(o Op) bool { return o.Failed }) {
			t.Fatalf("CrashAfter(%d): log %+v", i, log)
		}
	}
	fs.LogOps(false)
	if len(fs.OpLog()) != 0 {
		t.Fatalf("LogOps(false) kept the log")
	}
}

// Every subset of the unsynced entries gives its own image, and exactly
// the image the subset names.
func TestCrashChoosing(t *testing.T) {
	fs := oldFiles(t, 1)
	fs.CrashAfter(6) // after the directory sync, during the removes
	if err := checkpointLike(fs); !errors.Is(err, ErrCrashed) {
		t.Fatal(err)
	}
	if got := fs.UnsyncedEntries(); len(got) != 0 {
		t.Fatalf("after the directory sync: unsynced %v", got)
	}

	fs = oldFiles(t, 1)
	fs.CrashAfter(5) // before the directory sync
	if err := checkpointLike(fs); !errors.Is(err, ErrCrashed) {
		t.Fatal(err)
	}
	entries := fs.UnsyncedEntries()
	if want := []string{"/d/ckpt-2", "/d/wal-2"}; !slices.Equal(entries, want) {
		t.Fatalf("unsynced %v, want %v", entries, want)
	}
	images := map[string]bool{}
	for mask := 0; mask < 1<<len(entries); mask++ {
		keep := func(p string) bool { return mask&(1<<slices.Index(entries, p)) != 0 }
		img, err := fs.CrashChoosing(rng.New(1), 100, keep)
		must(t, err)
		names, err := img.List("/d")
		must(t, err)
		slices.Sort(names)
		want := []string{"ckpt-1", "wal-1"}
		for _, e := range entries {
			if keep(e) {
				want = append(want, strings.TrimPrefix(e, "/d/"))
			}
		}
		slices.Sort(want)
		if !slices.Equal(names, want) {
			t.Fatalf("mask %b: image holds %v, want %v", mask, names, want)
		}
		images[dump(t, img)] = true
	}
	if len(images) != 4 {
		t.Fatalf("%d distinct images of 4 subsets", len(images))
	}
	// A nil chooser is Crash.
	for seed := uint64(0); seed < 4; seed++ {
		a, err := fs.CrashChoosing(rng.New(seed), 50, nil)
		must(t, err)
		if dump(t, a) != dump(t, crash(t, fs, seed, 50)) {
			t.Fatalf("seed %d: CrashChoosing(nil) differs from Crash", seed)
		}
	}
}

// An unsynced directory lists the entries under it as undecided too.
func TestUnsyncedEntriesUnderNewDirectory(t *testing.T) {
	fs := newDisk(1)
	must(t, fs.MkdirAll("/a/b", 0o755))
	must(t, writeFile(t, fs, "/a/b/f", []byte("x"), true).Close())
	if got, want := fs.UnsyncedEntries(), []string{"/a", "/a/b", "/a/b/f"}; !slices.Equal(got, want) {
		t.Fatalf("unsynced %v, want %v", got, want)
	}
	for _, seed := range []uint64{1, 2, 3} {
		_ = messyFS(t, seed).UnsyncedEntries() // must not panic on links and renames
	}
}
