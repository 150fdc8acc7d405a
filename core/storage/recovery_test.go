package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/multiraft/multiraft/sim/simfs"
)

// frameOffsets parses the frame boundaries of a WAL file.
func frameOffsets(t *testing.T, data []byte) []int {
	t.Helper()
	var offs []int
	for off := 0; off < len(data); {
		if len(data)-off < frameHeader {
			t.Fatalf("WAL ends in a partial header at %d", off)
		}
		offs = append(offs, off)
		off += frameHeader + int(binary.LittleEndian.Uint32(data[off:]))
	}
	return offs
}

// framesFixture writes a region and then n synced frames into one WAL.
func framesFixture(t *testing.T, fs vfs.FS, n int) (*Engine, []engineView) {
	t.Helper()
	e := mustOpen(t, fs, Options{})
	r, err := e.CreateRegion(bootstrapState(regionMeta(1, "", "", 1)))
	check(t, err)
	check(t, e.Sync(false))
	views := []engineView{viewOf(t, e)}
	for i := 0; i < n; i++ {
		idx := uint64(6 + i)
		check(t, r.Append([]*raftpb.Entry{ent(idx, 5, fmt.Sprintf("entry %d", idx))}))
		r.Put([]byte(fmt.Sprintf("key%d", i)), []byte(strings.Repeat("v", 50)))
		check(t, e.Sync(false))
		views = append(views, viewOf(t, e))
	}
	return e, views
}

// A crash in the middle of a frame write: Open succeeds and shows the last
// synced frame, or the new frame whole if the crash kept all of it.
func TestTornTail(t *testing.T) {
	cuts, whole := 0, 0
	for seed := uint64(0); seed < 80; seed++ {
		ffs := newFaultFS(seed)
		e, views := framesFixture(t, ffs, 3)
		synced := views[len(views)-1]
		r := e.Region(1)
		// A frame of several blocks, so the crash can keep some of them.
		for i := 0; i < 40; i++ {
			r.Put([]byte(fmt.Sprintf("big%02d", i)), []byte(strings.Repeat("x", 300)))
		}
		check(t, r.Append([]*raftpb.Entry{ent(9, 6, "torn")}))
		next := viewOf(t, e)
		ffs.CrashAfter(int(seed % 2))
		if err := e.Sync(false); !errors.Is(err, simfs.ErrCrashed) {
			t.Fatalf("seed %d: sync at the crash point: %v", seed, err)
		}
		keep := int(seed*29) % 101
		e2, err := Open(crashFS(t, ffs, seed, keep), testDir, Options{})
		if err != nil {
			t.Fatalf("seed %d keep %d: open after a torn write: %v", seed, keep, err)
		}
		switch got := viewOf(t, e2); got.String() {
		case synced.String():
			cuts += int(e2.Stats().TornTailCuts)
		case next.String():
			whole++
		default:
			t.Fatalf("seed %d keep %d: recovered neither the synced state nor the next frame:\n%s", seed, keep, got)
		}
	}
	if cuts == 0 || whole == 0 {
		t.Fatalf("torn tails cut %d, whole frames kept %d: want both", cuts, whole)
	}
}

// corrupt flips one byte of a file.
func corrupt(t *testing.T, fs vfs.FS, name string, at int) {
	t.Helper()
	data := readFileT(t, fs, name)
	data[at] ^= 0x5a
	rewriteFile(t, fs, name, data)
}

func TestCorruptEarlierFrameIsAnError(t *testing.T) {
	for frame := 0; frame < 3; frame++ {
		for _, where := range []string{"length", "checksum", "payload"} {
			fs := vfs.NewCrashableMem()
			e, _ := framesFixture(t, fs, 3)
			check(t, e.Close())
			wal := onlyFile(t, fs, "wal-")
			offs := frameOffsets(t, readFileT(t, fs, wal))
			if len(offs) != 4 {
				t.Fatalf("%d frames, want 4", len(offs))
			}
			at := offs[frame] + map[string]int{"length": 1, "checksum": 5, "payload": frameHeader + 3}[where]
			corrupt(t, fs, wal, at)
			_, err := Open(fs, testDir, Options{})
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("frame %d %s flipped: open gave %v, want ErrCorrupt", frame, where, err)
			}
			if msg := err.Error(); !strings.Contains(msg, wal) || !strings.Contains(msg, fmt.Sprintf("offset %d:", offs[frame])) {
				t.Fatalf("error %q does not name %s and offset %d", msg, wal, offs[frame])
			}
		}
	}
}

// A bad last frame cannot be told from a torn write: it is cut.
func TestCorruptLastFrameIsCut(t *testing.T) {
	fs := vfs.NewCrashableMem()
	e, views := framesFixture(t, fs, 3)
	check(t, e.Close())
	wal := onlyFile(t, fs, "wal-")
	offs := frameOffsets(t, readFileT(t, fs, wal))
	corrupt(t, fs, wal, offs[3]+frameHeader+2)
	e2 := mustOpen(t, fs, Options{})
	sameView(t, "last frame cut", viewOf(t, e2), views[2])
	if e2.Stats().TornTailCuts != 1 {
		t.Fatalf("torn tail cuts %d", e2.Stats().TornTailCuts)
	}
}

func TestCorruptCheckpointIsAnError(t *testing.T) {
	for _, at := range []int{0, len(ckptMagic) + 2, len(ckptMagic) + 9, ckptHeader + 1, -1} {
		fs := vfs.NewCrashableMem()
		e, _ := framesFixture(t, fs, 2)
		check(t, e.checkpoint())
		check(t, e.Close())
		ck := onlyFile(t, fs, "ckpt-")
		pos := at
		if pos < 0 {
			pos = len(readFileT(t, fs, ck)) - 1
		}
		corrupt(t, fs, ck, pos)
		_, err := Open(fs, testDir, Options{})
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), ck) {
			t.Fatalf("checkpoint byte %d flipped: open gave %v, want ErrCorrupt naming %s", pos, err, ck)
		}
	}
}

func TestFrameWithWrongSeqIsAnError(t *testing.T) {
	fs := vfs.NewCrashableMem()
	e, _ := framesFixture(t, fs, 3)
	check(t, e.Close())
	wal := onlyFile(t, fs, "wal-")
	data := readFileT(t, fs, wal)
	offs := frameOffsets(t, data)
	// Drop frame 1: frame 2 then comes where frame 1 was expected.
	cut := append(append([]byte(nil), data[:offs[1]]...), data[offs[2]:]...)
	rewriteFile(t, fs, wal, cut)
	if _, err := Open(fs, testDir, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open of a WAL missing a frame: %v, want ErrCorrupt", err)
	}
}

// A crash at any point of the very first Open leaves either nothing or an
// empty store; Open then succeeds.
func TestCrashDuringFirstOpen(t *testing.T) {
	// Count the mutating operations of a first Open.
	probe := newFaultFS(0)
	e := mustOpen(t, probe, Options{})
	check(t, e.Close())
	ops := int(probe.Ops())
	for n := 0; n < ops; n++ {
		for _, keep := range []int{0, 30, 70, 100} {
			ffs := newFaultFS(uint64(n))
			ffs.CrashAfter(n)
			if _, err := Open(ffs, testDir, Options{}); !errors.Is(err, simfs.ErrCrashed) {
				t.Fatalf("crash after %d of %d ops: open gave %v", n, ops, err)
			}
			for seed := uint64(0); seed < 8; seed++ {
				img := crashFS(t, ffs, seed, keep)
				e, err := Open(img, testDir, Options{})
				if err != nil {
					t.Fatalf("crash after op %d, keep %d, seed %d: reopen: %v\nfiles: %v", n, keep, seed, err, img.Inner())
				}
				if len(e.RegionIDs()) != 0 || e.Ident() != nil {
					t.Fatalf("store not empty")
				}
			}
		}
	}
}

// A WAL with frames but no checkpoint cannot come from a crash.
func TestWALWithoutCheckpointIsAnError(t *testing.T) {
	fs := vfs.NewCrashableMem()
	e, _ := framesFixture(t, fs, 1)
	check(t, e.Close())
	check(t, fs.Remove(fs.PathJoin(testDir, onlyFile(t, fs, "ckpt-"))))
	if _, err := Open(fs, testDir, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open without a checkpoint: %v, want ErrCorrupt", err)
	}
}

// A relative store directory survives a crash: its parent (the current
// directory) is synced too.
func TestRelativeDirSurvivesCrash(t *testing.T) {
	for _, dir := range []string{"data", "a/b/data"} {
		fs := newFaultFS(0)
		e, err := Open(fs, dir, Options{})
		check(t, err)
		_, err = e.CreateRegion(bootstrapState(regionMeta(1, "", "", 1)))
		check(t, err)
		check(t, e.Sync(true))
		check(t, e.Close())
		e2, err := Open(crashFS(t, fs, 1, 0), dir, Options{})
		check(t, err)
		if len(e2.RegionIDs()) != 1 {
			t.Fatalf("dir %q: regions %v after a crash", dir, e2.RegionIDs())
		}
	}
}
