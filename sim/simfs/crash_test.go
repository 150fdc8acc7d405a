package simfs

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/multiraft/multiraft/core/rng"
)

// tester is what the helpers need of a *testing.T or a *rapid.T.
type tester interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// dump renders the whole tree of fs: every directory and every file with
// its contents, in sorted order.
func dump(t tester, fs vfs.FS) string {
	t.Helper()
	var b strings.Builder
	var walk func(dir string)
	walk = func(dir string) {
		names, err := fs.List(dir)
		if err != nil {
			t.Fatalf("list %s: %v", dir, err)
		}
		slices.Sort(names)
		for _, n := range names {
			p := fs.PathJoin(dir, n)
			st, err := fs.Stat(p)
			if err != nil {
				t.Fatalf("stat %s: %v", p, err)
			}
			if st.IsDir() {
				fmt.Fprintf(&b, "%s/\n", p)
				walk(p)
				continue
			}
			fmt.Fprintf(&b, "%s %d %x\n", p, st.Size(), readAll(t, fs, p))
		}
	}
	walk("/")
	return b.String()
}

func readAll(t tester, fs vfs.FS, p string) []byte {
	t.Helper()
	f, err := fs.Open(p)
	if err != nil {
		t.Fatalf("open %s: %v", p, err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return data
}

func must(t tester, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func syncDir(t tester, fs vfs.FS, dir string) {
	t.Helper()
	d, err := fs.OpenDir(dir)
	must(t, err)
	must(t, d.Sync())
	must(t, d.Close())
}

func writeFile(t tester, fs vfs.FS, p string, data []byte, sync bool) vfs.File {
	t.Helper()
	f, err := fs.Create(p, vfs.WriteCategoryUnspecified)
	must(t, err)
	if len(data) > 0 {
		_, err = f.Write(bytes.Clone(data))
		must(t, err)
	}
	if sync {
		must(t, f.Sync())
	}
	return f
}

func pattern(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7) + byte(i/BlockSize)
		if b[i] == 0 {
			b[i] = 1
		}
	}
	return b
}

// newDisk is a FaultFS over a new crashable MemFS: pebble's own tracking of
// the synced state (MemFS.CrashClone) is there to compare with.
func newDisk(seed uint64) *FaultFS {
	return NewFaultFS(vfs.NewCrashableMem(), rng.New(seed))
}

// messyFS builds a disk with a random mix of synced and unsynced
// directories, files, data, overwrites, links, renames and removes, all
// through its FaultFS.
func messyFS(t *testing.T, seed uint64) *FaultFS {
	t.Helper()
	r := rng.New(seed)
	fs := newDisk(seed)
	dirs := []string{"/a", "/a/b", "/c"}
	for _, d := range dirs {
		must(t, fs.MkdirAll(d, 0o755))
	}
	syncDir(t, fs, "/")
	syncDir(t, fs, "/a")
	var files []string
	for i := 0; i < 40; i++ {
		dir := dirs[r.Intn(len(dirs))]
		switch op := r.Intn(13); {
		case op < 4: // create, write some blocks, maybe sync, append more
			p := fs.PathJoin(dir, fmt.Sprintf("f%02d", i))
			f := writeFile(t, fs, p, pattern(byte(i), r.Intn(3*BlockSize)), r.Chance(0.6))
			_, err := f.Write(pattern(byte(i+100), r.Intn(3*BlockSize)))
			must(t, err)
			if r.Chance(0.3) {
				must(t, f.Sync())
			}
			must(t, f.Close())
			files = append(files, p)
		case op < 6 && len(files) > 0: // rename
			k := r.Intn(len(files))
			np := fs.PathJoin(dirs[r.Intn(len(dirs))], fmt.Sprintf("r%02d", i))
			if err := fs.Rename(files[k], np); err == nil {
				files[k] = np
			}
		case op < 7 && len(files) > 0: // remove
			k := r.Intn(len(files))
			if err := fs.Remove(files[k]); err == nil {
				files = slices.Delete(files, k, k+1)
			}
		case op < 8 && len(files) > 0: // overwrite in place, maybe synced
			f, err := fs.OpenReadWrite(files[r.Intn(len(files))], vfs.WriteCategoryUnspecified)
			must(t, err)
			_, err = f.WriteAt([]byte("overwritten"), int64(r.Intn(2*BlockSize)))
			must(t, err)
			if r.Chance(0.3) {
				must(t, f.Sync())
			}
			must(t, f.Close())
		case op < 9 && len(files) > 0: // read to the end, then append
			f, err := fs.OpenReadWrite(files[r.Intn(len(files))], vfs.WriteCategoryUnspecified)
			must(t, err)
			_, err = io.ReadAll(f)
			must(t, err)
			_, err = f.Write(pattern(byte(i), r.Intn(BlockSize)))
			must(t, err)
			must(t, f.Close())
		case op < 10 && len(files) > 0: // hard link
			np := fs.PathJoin(dirs[r.Intn(len(dirs))], fmt.Sprintf("l%02d", i))
			must(t, fs.Link(files[r.Intn(len(files))], np))
			files = append(files, np)
		case op < 11 && len(files) > 0: // reuse for write
			k := r.Intn(len(files))
			np := fs.PathJoin(dir, fmt.Sprintf("u%02d", i))
			f, err := fs.ReuseForWrite(files[k], np, vfs.WriteCategoryUnspecified)
			must(t, err)
			_, err = f.Write([]byte("reused"))
			must(t, err)
			must(t, f.Close())
			files[k] = np
		default:
			syncDir(t, fs, dirs[r.Intn(len(dirs))])
		}
	}
	return fs
}

func crash(t *testing.T, fs *FaultFS, seed uint64, keep int) *FaultFS {
	t.Helper()
	out, err := fs.Crash(rng.New(seed), keep)
	if err != nil {
		t.Fatalf("crash: %v", err)
	}
	return out
}

func TestCrashIsDeterministic(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		fs := messyFS(t, seed)
		live := dump(t, fs)
		distinct := map[string]bool{}
		for cs := uint64(0); cs < 8; cs++ {
			a := dump(t, crash(t, fs, cs, 50))
			b := dump(t, crash(t, fs, cs, 50))
			if a != b {
				t.Fatalf("fs %d crash seed %d: two images differ:\n%s\n----\n%s", seed, cs, a, b)
			}
			distinct[a] = true
		}
		if dump(t, fs) != live {
			t.Fatalf("fs %d: Crash changed the live fs", seed)
		}
		if seed == 1 && len(distinct) < 2 {
			t.Fatalf("eight crash seeds gave one image; the draws do not matter")
		}
	}
}

// TestCrashImagesAsBefore pins the images of four messy disks, and the first
// draw of the injector of each image, to what they were when Crash read
// pebble's MemFS internals by reflection: the simulator's trace hashes
// depend on both, so the draws must stay in the same order. (A change to
// messyFS changes the disks, and these sums with them.)
func TestCrashImagesAsBefore(t *testing.T) {
	for _, want := range []struct {
		seed uint64
		sum  string
		next uint64
	}{
		{1, "99c50e41e7beac1377249df58f9e6b350f5f6d21b51195c39bd0875acc84625b", 17045163735894261553},
		{2, "396707b2c18826da53efb8330cbc7233b2dec7569af31870a9320310786ad174", 2944165914419940052},
		{3, "17be7f1dc14b189164edbf962d6289517ad02842fa28aa5f896ca2adc98f5368", 8736964772670428106},
		{4, "22b360d5fb55126beeb10fa8399d75148602a89f7fc47dd6e831f956dfc53507", 2717032062360278737},
	} {
		img := crash(t, messyFS(t, want.seed), want.seed*11, 50)
		if sum := fmt.Sprintf("%x", sha256.Sum256([]byte(dump(t, img)))); sum != want.sum {
			t.Errorf("fs %d: image sha256 %s, want %s", want.seed, sum, want.sum)
		}
		if next := img.r.Uint64(); next != want.next {
			t.Errorf("fs %d: the image's injector draws %d first, want %d", want.seed, next, want.next)
		}
	}
}

func TestCrashKeepZeroIsSyncedState(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		fs := messyFS(t, seed)
		got := dump(t, crash(t, fs, 7, 0))
		want := dump(t, fs.Inner().(*vfs.MemFS).CrashClone(vfs.CrashCloneCfg{}))
		if got != want {
			t.Fatalf("fs %d: keep 0 image differs from the synced state:\n%s\n---- want\n%s", seed, got, want)
		}
	}
}

func TestCrashKeepHundredIsLive(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		fs := messyFS(t, seed)
		if got, want := dump(t, crash(t, fs, 7, 100)), dump(t, fs); got != want {
			t.Fatalf("fs %d: keep 100 image differs from the live fs:\n%s\n---- want\n%s", seed, got, want)
		}
	}
}

func TestCrashImageIsFullySynced(t *testing.T) {
	for seed := uint64(1); seed <= 10; seed++ {
		img := crash(t, messyFS(t, seed), seed, 50)
		if got, want := dump(t, crash(t, img, 1, 0)), dump(t, img); got != want {
			t.Fatalf("fs %d: the image's synced state is not its content:\n%s\n---- want\n%s", seed, got, want)
		}
	}
}

func TestCrashDropsUnsyncedEntry(t *testing.T) {
	fs := newDisk(1)
	must(t, fs.MkdirAll("/d", 0o755))
	syncDir(t, fs, "/")
	syncDir(t, fs, "/d")
	must(t, writeFile(t, fs, "/d/old", []byte("old"), true).Close())
	syncDir(t, fs, "/d")
	// A synced file in a directory that was not synced afterwards.
	must(t, writeFile(t, fs, "/d/new", []byte("new"), true).Close())
	// A removal that was not synced either.
	must(t, fs.Remove("/d/old"))

	got := dump(t, crash(t, fs, 1, 0))
	if want := "/d/\n/d/old 3 " + fmt.Sprintf("%x", "old") + "\n"; got != want {
		t.Fatalf("keep 0:\n%s\nwant\n%s", got, want)
	}
	got = dump(t, crash(t, fs, 1, 100))
	if want := "/d/\n/d/new 3 " + fmt.Sprintf("%x", "new") + "\n"; got != want {
		t.Fatalf("keep 100:\n%s\nwant\n%s", got, want)
	}
}

func TestCrashUnsyncedDirectoryVanishes(t *testing.T) {
	fs := newDisk(1)
	must(t, fs.MkdirAll("/store", 0o755))
	must(t, writeFile(t, fs, "/store/f", []byte("x"), true).Close())
	syncDir(t, fs, "/store") // the root was never synced
	if got := dump(t, crash(t, fs, 1, 0)); got != "" {
		t.Fatalf("keep 0 kept a directory whose parent was never synced:\n%s", got)
	}
}

// A file synced before a rename that was not synced keeps its whole data
// under whichever names survive: it never tears.
func TestCrashSyncedFileRenamedIsWhole(t *testing.T) {
	data := pattern(3, 5*BlockSize+100)
	fs := newDisk(1)
	syncDir(t, fs, "/")
	must(t, writeFile(t, fs, "/ckpt.tmp", data, true).Close())
	syncDir(t, fs, "/")
	must(t, fs.Rename("/ckpt.tmp", "/ckpt"))
	seen := map[string]bool{}
	for seed := uint64(0); seed < 64; seed++ {
		img := crash(t, fs, seed, 50)
		names, err := img.List("/")
		must(t, err)
		slices.Sort(names)
		seen[strings.Join(names, ",")] = true
		for _, n := range names {
			if got := readAll(t, img, "/"+n); !bytes.Equal(got, data) {
				t.Fatalf("seed %d: %s holds %d bytes, not the synced %d", seed, n, len(got), len(data))
			}
		}
	}
	if len(seen) != 4 {
		t.Fatalf("name outcomes %v, want all four of old/new × kept/lost", seen)
	}
}

// Unsynced blocks survive one by one; a kept block past the synced length
// zero-fills the blocks before it that were lost.
func TestCrashBlocks(t *testing.T) {
	synced := pattern(1, BlockSize+10)
	more := pattern(2, 3*BlockSize)
	live := append(bytes.Clone(synced), more...)
	fs := newDisk(1)
	syncDir(t, fs, "/")
	f := writeFile(t, fs, "/wal", synced, true)
	syncDir(t, fs, "/")
	_, err := f.Write(bytes.Clone(more))
	must(t, err)
	lengths := map[int]bool{}
	for seed := uint64(0); seed < 200; seed++ {
		got := readAll(t, crash(t, fs, seed, 50), "/wal")
		lengths[len(got)] = true
		if !bytes.Equal(got[:min(len(got), BlockSize)], synced[:BlockSize]) {
			t.Fatalf("seed %d: the synced first block changed", seed)
		}
		if len(got) < len(synced) {
			t.Fatalf("seed %d: %d bytes, less than the %d synced", seed, len(got), len(synced))
		}
		for off := BlockSize; off < len(got); off += BlockSize {
			end := min(off+BlockSize, len(got))
			blk := got[off:end]
			zero := bytes.Count(blk, []byte{0}) == len(blk)
			if !bytes.Equal(blk, live[off:end]) && !zero &&
				!(off == BlockSize && bytes.Equal(blk, append(bytes.Clone(synced[off:]), make([]byte, len(blk)-len(synced[off:]))...))) {
				t.Fatalf("seed %d: block at %d is neither live data nor the synced state", seed, off)
			}
		}
	}
	for _, n := range []int{len(synced), 2 * BlockSize, 3 * BlockSize, len(live)} {
		if !lengths[n] {
			t.Fatalf("lengths seen %v, want %d among them", lengths, n)
		}
	}
}

// A disk written behind its FaultFS's back cannot be crashed: Crash says so
// rather than build an image of a state it does not know.
func TestCrashRefusesUntrackedDisk(t *testing.T) {
	fs := newDisk(1)
	must(t, writeFile(t, fs, "/tracked", []byte("x"), true).Close())
	if _, err := fs.Crash(rng.New(1), 50); err != nil {
		t.Fatalf("crash of a tracked disk: %v", err)
	}
	must(t, writeFile(t, fs.Inner(), "/behind", []byte("y"), true).Close())
	must(t, fs.Rename("/behind", "/renamed"))
	if _, err := fs.Crash(rng.New(1), 50); err == nil || !strings.Contains(err.Error(), "/renamed") {
		t.Fatalf("crash after an untracked write: %v, want an error naming the rename", err)
	}
}

func TestFaultFSCrashAfter(t *testing.T) {
	for n := 0; n < 10; n++ {
		ffs := NewFaultFS(vfs.NewMem(), rng.New(uint64(n)))
		must(t, ffs.MkdirAll("/d", 0o755))
		f, err := ffs.Create("/d/a", vfs.WriteCategoryUnspecified)
		must(t, err)
		dir, err := ffs.OpenDir("/d")
		must(t, err)
		ffs.CrashAfter(n)
		// Mutating operations in order: mkdir, create, write, sync, dir sync,
		// rename, remove, write.
		var errs []error
		try := func(err error) { errs = append(errs, err) }
		try(ffs.MkdirAll("/e", 0o755))
		if c, err := ffs.Create("/d/c", vfs.WriteCategoryUnspecified); err == nil {
			c.Close()
		} else {
			try(err)
		}
		if len(errs) < 2 {
			try(nil)
		}
		_, err = f.Write([]byte("hello world"))
		try(err)
		try(f.Sync())
		try(dir.Sync())
		try(ffs.Rename("/d/a", "/d/b"))
		try(ffs.Remove("/d/c"))
		_, err = f.Write([]byte("more"))
		try(err)
		must(t, f.Close())
		must(t, dir.Close())
		for i, err := range errs {
			switch {
			case i < n && err != nil:
				t.Fatalf("CrashAfter(%d): op %d failed: %v", n, i, err)
			case i >= n && !errors.Is(err, ErrCrashed):
				t.Fatalf("CrashAfter(%d): op %d did not fail with ErrCrashed: %v", n, i, err)
			}
		}
		if got := ffs.Crashed(); got != (n < len(errs)) {
			t.Fatalf("CrashAfter(%d): Crashed() = %v", n, got)
		}
		if want := int64(2 + len(errs)); ffs.Ops() != want {
			t.Fatalf("Ops() = %d, want %d", ffs.Ops(), want)
		}
		// Reads still work after the crash point.
		if _, err := ffs.List("/d"); err != nil {
			t.Fatalf("list after crash: %v", err)
		}
	}
}

func TestFaultFSTornWrite(t *testing.T) {
	data := pattern(9, 1000)
	lens := map[int]bool{}
	for seed := uint64(0); seed < 50; seed++ {
		mem := vfs.NewMem()
		ffs := NewFaultFS(mem, rng.New(seed))
		f, err := ffs.Create("/f", vfs.WriteCategoryUnspecified)
		must(t, err)
		ffs.CrashAfter(0)
		n, err := f.Write(bytes.Clone(data))
		if !errors.Is(err, ErrCrashed) {
			t.Fatalf("write at the crash point: %v", err)
		}
		got := readAll(t, mem, "/f")
		if len(got) != n || !bytes.Equal(got, data[:n]) {
			t.Fatalf("seed %d: torn write reported %d bytes, file holds %d", seed, n, len(got))
		}
		if img := crash(t, ffs, seed, 100); !bytes.Equal(readAll(t, img, "/f"), got) {
			t.Fatalf("seed %d: the tracking missed the torn write", seed)
		}
		lens[n] = true
	}
	if len(lens) < 10 {
		t.Fatalf("torn write lengths %v: not random", lens)
	}
}

// A write that the wrapped file refuses (a read-only handle) changes
// nothing in the tracking either, even one that would only have extended
// the file.
func TestFaultFSRefusedWrite(t *testing.T) {
	fs := newDisk(1)
	must(t, writeFile(t, fs, "/f", []byte("synced"), true).Close())
	f, err := fs.Open("/f")
	must(t, err)
	if _, err := f.Write([]byte("more")); err == nil {
		t.Fatal("write through a read-only handle succeeded")
	}
	if _, err := f.WriteAt(nil, 100); err == nil {
		t.Fatal("empty write at 100 through a read-only handle succeeded")
	}
	must(t, f.Close())
	if got, want := dump(t, crash(t, fs, 1, 100)), dump(t, fs); got != want {
		t.Fatalf("keep 100 image:\n%s---- want the live state\n%s", got, want)
	}
}

func TestFaultFSErrorRate(t *testing.T) {
	run := func(seed uint64, p float64) []bool {
		ffs := NewFaultFS(vfs.NewMem(), rng.New(seed))
		ffs.SetErrorRate(p)
		var out []bool
		for i := 0; i < 200; i++ {
			err := ffs.MkdirAll(fmt.Sprintf("/d%d", i), 0o755)
			if err != nil && !errors.Is(err, ErrInjected) {
				t.Fatalf("unexpected error %v", err)
			}
			out = append(out, err != nil)
		}
		if ffs.Crashed() {
			t.Fatal("error injection counts as a crash")
		}
		return out
	}
	count := func(b []bool) int {
		n := 0
		for _, x := range b {
			if x {
				n++
			}
		}
		return n
	}
	if n := count(run(1, 0)); n != 0 {
		t.Fatalf("rate 0 failed %d ops", n)
	}
	if n := count(run(1, 1)); n != 200 {
		t.Fatalf("rate 1 failed %d of 200 ops", n)
	}
	a, b := run(5, 0.25), run(5, 0.25)
	if !slices.Equal(a, b) {
		t.Fatal("same seed, different failures")
	}
	if n := count(a); n < 25 || n > 80 {
		t.Fatalf("rate 0.25 failed %d of 200 ops", n)
	}
}
