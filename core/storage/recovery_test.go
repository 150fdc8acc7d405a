package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/record"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/sim/simfs"
)

// framesFixture writes a region and then n synced records into one WAL.
func framesFixture(t *testing.T, fs vfs.FS, n int) (*Engine, []engineView) {
	t.Helper()
	e := mustOpen(t, fs, Options{})
	r, err := e.CreateRegion(bootstrapState(regionMeta(1, "", "", 1)))
	check(t, err)
	check(t, e.Sync())
	views := []engineView{viewOf(t, e)}
	for i := 0; i < n; i++ {
		idx := uint64(6 + i)
		check(t, r.Append([]*raftpb.Entry{ent(idx, 5, fmt.Sprintf("entry %d", idx))}))
		r.Put([]byte(fmt.Sprintf("key%d", i)), []byte(strings.Repeat("v", 50)))
		check(t, e.Sync())
		views = append(views, viewOf(t, e))
	}
	return e, views
}

// A crash in the middle of a record write: Open succeeds and shows the last
// synced record, or the new record whole if the crash kept all of it.
func TestTornTail(t *testing.T) {
	cuts, whole := 0, 0
	for seed := uint64(0); seed < 80; seed++ {
		ffs := newFaultFS(seed)
		e, views := framesFixture(t, ffs, 3)
		synced := views[len(views)-1]
		r := e.Region(1)
		// A record of several 4 KiB blocks, so the crash can keep some.
		for i := 0; i < 40; i++ {
			r.Put([]byte(fmt.Sprintf("big%02d", i)), []byte(strings.Repeat("x", 300)))
		}
		check(t, r.Append([]*raftpb.Entry{ent(9, 6, "torn")}))
		next := viewOf(t, e)
		ffs.CrashAfter(int(seed % 2))
		if err := e.Sync(); !errors.Is(err, simfs.ErrCrashed) {
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
			t.Fatalf("seed %d keep %d: recovered neither the synced state nor the next record:\n%s", seed, keep, got)
		}
	}
	if cuts == 0 || whole == 0 {
		t.Fatalf("torn tails cut %d, whole records kept %d: want both", cuts, whole)
	}
}

// corrupt flips one byte of a file.
func corrupt(t *testing.T, fs vfs.FS, name string, at int) {
	t.Helper()
	data := readFileT(t, fs, name)
	data[at] ^= 0x5a
	rewriteFile(t, fs, name, data)
}

// A damaged record with later records in the same block is corruption when
// its header can be believed (a bad checksum or payload): the next chunk is
// then where the header says.
func TestCorruptEarlierRecordIsAnError(t *testing.T) {
	c := newWALCase(t, [][]byte{[]byte("a"), []byte("bb"), []byte("ccc")})
	for i := 1; i < len(c.ends)-1; i++ {
		start := c.ends[i-1]
		for _, where := range []string{"checksum", "payload"} {
			at := start + map[string]int{"checksum": 1, "payload": walChunkHeader + 3}[where]
			wal := bytes.Clone(c.wal)
			wal[at] ^= 0x5a
			_, err := c.open(t, wal)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("record %d %s flipped: open gave %v, want ErrCorrupt", i, where, err)
			}
			if msg := err.Error(); !strings.Contains(msg, c.walName) || !strings.Contains(msg, fmt.Sprintf("offset %d:", start)) {
				t.Fatalf("error %q does not name %s and offset %d", msg, c.walName, start)
			}
		}
	}
}

// A record whose header is damaged too (length, type, or zeroed) gives no
// trusted boundary in its block, but a record that begins in a later block
// still shows it was not the last: corruption.
func TestCorruptHeaderBeforeLaterBlockIsAnError(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 20<<10)
	c := newWALCase(t, [][]byte{big, big, big, big})
	if len(c.wal) < 2*walBlockSize {
		t.Fatalf("WAL of %d bytes: want at least two blocks", len(c.wal))
	}
	for i := 1; i < len(c.ends)-2; i++ {
		start := c.ends[i-1]
		for _, where := range []string{"length", "type", "zeroed"} {
			wal := bytes.Clone(c.wal)
			switch where {
			case "length":
				wal[start+5] ^= 0x5a
			case "type":
				wal[start+6] = 9
			case "zeroed":
				clear(wal[start : start+walChunkHeader])
			}
			_, err := c.open(t, wal)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("record %d at %d, %s header: open gave %v, want ErrCorrupt", i, start, where, err)
			}
			if msg := err.Error(); !strings.Contains(msg, fmt.Sprintf("offset %d:", start)) {
				t.Fatalf("error %q does not name offset %d", msg, start)
			}
		}
	}
}

// A bad last record cannot be told from a torn write: it is cut.
func TestCorruptLastRecordIsCut(t *testing.T) {
	c := newWALCase(t, [][]byte{[]byte("a"), []byte("bb"), []byte("ccc")})
	last := c.ends[len(c.ends)-2]
	for _, at := range []int{last, last + 5, last + 6, last + walChunkHeader + 2, len(c.wal) - 1} {
		wal := bytes.Clone(c.wal)
		wal[at] ^= 0x5a
		e, err := c.open(t, wal)
		check(t, err)
		sameView(t, "last record cut", viewOf(t, e), c.views[len(c.views)-2])
		if e.Stats().TornTailCuts != 1 {
			t.Fatalf("torn tail cuts %d", e.Stats().TornTailCuts)
		}
	}
}

func TestCorruptCheckpointIsAnError(t *testing.T) {
	for _, at := range []int{0, len(ckptMagic), len(ckptMagic) + 1, len(ckptMagic) + 4, ckptHeader - 2, ckptHeader + 1, -1} {
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

// A checkpoint of another format version is refused, naming the version.
func TestCheckpointOfOtherVersionIsAnError(t *testing.T) {
	fs := vfs.NewCrashableMem()
	e, _ := framesFixture(t, fs, 1)
	check(t, e.checkpoint())
	check(t, e.Close())
	ck := onlyFile(t, fs, "ckpt-")
	data := readFileT(t, fs, ck)
	// Version 1 had the same layout, with a checksum of the payload only.
	copy(data[len(ckptMagic):], "01")
	binary.LittleEndian.PutUint32(data[ckptHeader-4:], crc32.Checksum(data[ckptHeader:], crcTable))
	rewriteFile(t, fs, ck, data)
	_, err := Open(fs, testDir, Options{})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), ck) || !strings.Contains(err.Error(), "format version 1") {
		t.Fatalf("open of a version 1 checkpoint: %v", err)
	}
}

// A record whose sequence number is not the next one is corruption, even
// when it is the last.
func TestRecordWithWrongSeqIsAnError(t *testing.T) {
	c := newWALCase(t, [][]byte{[]byte("a"), []byte("bb"), []byte("ccc")})
	recs := readAllRecords(t, c.wal)
	rewrite := func(recs [][]byte) []byte {
		var buf bytes.Buffer
		w := record.NewWriter(&buf)
		for _, r := range recs {
			_, err := w.WriteRecord(r)
			check(t, err)
		}
		return buf.Bytes()
	}
	var cases [][]byte
	for drop := 1; drop < len(recs)-1; drop++ {
		cases = append(cases, rewrite(slices.Delete(slices.Clone(recs), drop, drop+1)))
	}
	b := &pb.WalBatch{}
	check(t, proto.Unmarshal(recs[len(recs)-1], b))
	b.Seq += 5
	bumped, err := proto.Marshal(b)
	check(t, err)
	cases = append(cases, rewrite(append(slices.Clone(recs[:len(recs)-1]), bumped)))
	for i, wal := range cases {
		if _, err := c.open(t, wal); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "seq") {
			t.Fatalf("case %d: open of a WAL with a record out of sequence: %v, want ErrCorrupt", i, err)
		}
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
		check(t, e.SyncAll())
		check(t, e.Close())
		e2, err := Open(crashFS(t, fs, 1, 0), dir, Options{})
		check(t, err)
		if len(e2.RegionIDs()) != 1 {
			t.Fatalf("dir %q: regions %v after a crash", dir, e2.RegionIDs())
		}
	}
}
