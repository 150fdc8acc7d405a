package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/record"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/rng"
)

// hostileSeq is the sequence number of the batches forged inside values: far
// ahead of any real one.
const hostileSeq = 1 << 62

// hostileBatch is a well-formed batch that would be replayed if a reader
// took a value for framing.
func hostileBatch() []byte {
	b, err := proto.Marshal(&pb.WalBatch{Seq: hostileSeq, Updates: []*pb.RegionUpdate{{RegionId: 1, AppliedIndex: 99}}})
	if err != nil {
		panic(err)
	}
	return b
}

// oldFormatFrame is a frame of the WAL format before the record format:
// length u32, CRC-32C u32, payload.
func oldFormatFrame(payload []byte) []byte {
	buf := binary.LittleEndian.AppendUint32(nil, uint32(len(payload)))
	buf = binary.LittleEndian.AppendUint32(buf, crc32.Checksum(payload, crc32.MakeTable(crc32.Castagnoli)))
	return append(buf, payload...)
}

// recordFormatChunk is payload as pebble's record.Writer frames it as the
// first record of a file: one full chunk, header included, if it fits.
func recordFormatChunk(payload []byte) []byte {
	var buf bytes.Buffer
	w := record.NewWriter(&buf)
	if _, err := w.WriteRecord(payload); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// hostileValues are values holding a valid frame or chunk, alone or with
// filler around them.
func hostileValues() [][]byte {
	b := hostileBatch()
	old, chunk := oldFormatFrame(b), recordFormatChunk(b)
	return [][]byte{
		old,
		chunk,
		append(append(bytes.Repeat([]byte{0}, 40), old...), chunk...),
		bytes.Repeat(append(old, chunk...), 50),
	}
}

// walCase is a closed store whose WAL holds a record creating region 1,
// then one synced record per value (an entry and a put of the value).
type walCase struct {
	files   map[string][]byte // every file of the store, by name
	walName string
	wal     []byte
	views   []engineView // views[i]: the state after i records
	ends    []int        // ends[i]: the WAL size after i records
}

func newWALCase(t *testing.T, values [][]byte) *walCase {
	t.Helper()
	fs := vfs.NewCrashableMem()
	e := mustOpen(t, fs, Options{})
	c := &walCase{views: []engineView{viewOf(t, e)}, ends: []int{0}}
	r, err := e.CreateRegion(bootstrapState(regionMeta(1, "", "", 1)))
	check(t, err)
	check(t, e.Sync())
	c.views = append(c.views, viewOf(t, e))
	c.ends = append(c.ends, int(e.WALBytes()))
	for i, v := range values {
		idx := uint64(6 + i)
		check(t, r.Append([]*raftpb.Entry{ent(idx, 5, fmt.Sprintf("entry %d", idx))}))
		r.Put([]byte(fmt.Sprintf("key%03d", i)), v)
		check(t, e.Sync())
		c.views = append(c.views, viewOf(t, e))
		c.ends = append(c.ends, int(e.WALBytes()))
	}
	check(t, e.Close())
	c.files = map[string][]byte{}
	for _, n := range listDir(t, fs) {
		c.files[n] = readFileT(t, fs, n)
	}
	c.walName = onlyFile(t, fs, "wal-")
	c.wal = c.files[c.walName]
	return c
}

// open opens a copy of the store whose WAL is wal.
func (c *walCase) open(t *testing.T, wal []byte) (*Engine, error) {
	t.Helper()
	fs := vfs.NewCrashableMem()
	check(t, fs.MkdirAll(testDir, 0o755))
	for name, data := range c.files {
		if name == c.walName {
			data = wal
		}
		rewriteFile(t, fs, name, data)
	}
	return Open(fs, testDir, Options{})
}

// tornOpen opens the store with its WAL cut at cut and, if zero >= 0,
// zeroed from zero on.
func (c *walCase) tornOpen(t *testing.T, cut, zero int) {
	t.Helper()
	img := bytes.Clone(c.wal[:cut])
	if zero >= 0 && zero < len(img) {
		clear(img[zero:])
	}
	c.openDamaged(t, img, fmt.Sprintf("cut at %d, zeroed from %d", cut, zero))
}

// openDamaged opens the store with wal, a damaged copy of its WAL, and
// requires the state after the last record that wal holds intact.
func (c *walCase) openDamaged(t *testing.T, wal []byte, how string) {
	t.Helper()
	e, err := c.open(t, wal)
	if err != nil {
		t.Fatalf("WAL of %d bytes %s: open: %v", len(c.wal), how, err)
	}
	keep := 0
	for k, end := range c.ends {
		if end <= len(wal) && bytes.Equal(wal[:end], c.wal[:end]) {
			keep = k
		}
	}
	if got := viewOf(t, e).String(); got != c.views[keep].String() {
		t.Fatalf("WAL of %d bytes %s: recovered state is not the state after record %d:\n%s", len(c.wal), how, keep, got)
	}
}

// A value holding a well-formed frame or chunk is never read as framing:
// with the record that carries it torn at any point, the store opens and
// the torn record is cut. (Before the record format, recovery searched
// every offset after a bad frame for a valid one, found the frame in the
// value and refused to open.)
func TestValueHoldingAFrameIsNotFraming(t *testing.T) {
	forged := [][]byte{oldFormatFrame(hostileBatch()), recordFormatChunk(hostileBatch())}
	for i, v := range hostileValues() {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			c := newWALCase(t, [][]byte{[]byte("plain"), v})
			last := c.ends[len(c.ends)-2]
			// Cuts all along the last record, and just after every copy
			// of a forged frame or chunk in it.
			step := 1
			if len(c.wal)-last > 2000 {
				step = 97
			}
			var cuts []int
			for cut := last; cut < len(c.wal); cut += step {
				cuts = append(cuts, cut)
			}
			for _, f := range forged {
				for from := last; ; {
					i := bytes.Index(c.wal[from:], f)
					if i < 0 {
						break
					}
					cuts = append(cuts, from+i+len(f))
					from += i + 1
				}
			}
			for _, cut := range cuts {
				c.tornOpen(t, cut, -1)
			}
		})
	}
}

// A WAL cut at any byte of its last record, or zeroed from any 4 KiB
// boundary (as a crash image that drops unsynced blocks leaves it), opens
// with the tail cut.
func TestTornLastRecordAtEveryOffset(t *testing.T) {
	values := [][]byte{
		[]byte("a"),
		hostileValues()[3],
		bytes.Repeat([]byte("c"), 40<<10), // spans two blocks
		bytes.Repeat([]byte("d"), 200),
	}
	for n := 1; n <= len(values); n++ {
		c := newWALCase(t, values[:n])
		last := c.ends[len(c.ends)-2]
		for cut := last; cut <= len(c.wal); cut++ {
			// Every offset of records up to a few KiB; in the one of two
			// blocks, every offset near a block or 4 KiB boundary and
			// every 61st elsewhere.
			if near := cut % 4096; len(c.wal)-last > 10000 && near > 16 && near < 4096-16 && cut%61 != 0 {
				continue
			}
			c.tornOpen(t, cut, -1)
		}
		for z := 0; z < len(c.wal); z += 4096 {
			c.tornOpen(t, len(c.wal), z)
			// One unsynced 4 KiB block lost, the ones after it kept.
			if z+4096 > last && z+4096 < len(c.wal) {
				wal := bytes.Clone(c.wal)
				clear(wal[max(z, last) : z+4096])
				c.openDamaged(t, wal, fmt.Sprintf("zeroed in [%d,%d)", max(z, last), z+4096))
			}
		}
	}
}

// A flipped byte in a record that is not the last is corruption, reported
// with the file and the record's offset.
func TestFlippedByteInMiddleRecordIsCorrupt(t *testing.T) {
	c := newWALCase(t, [][]byte{[]byte("a"), []byte("bb"), []byte("ccc"), []byte("dddd")})
	for i := 1; i < len(c.ends)-1; i++ {
		start, end := c.ends[i-1], c.ends[i]
		for _, at := range []int{start, start + 3, (start + end) / 2, end - 1} {
			wal := bytes.Clone(c.wal)
			wal[at] ^= 0x5a
			_, err := c.open(t, wal)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("record %d [%d,%d) byte %d flipped: open gave %v, want ErrCorrupt", i, start, end, at, err)
			}
			if msg := err.Error(); !strings.Contains(msg, c.walName) || !strings.Contains(msg, fmt.Sprintf("offset %d:", start)) {
				t.Fatalf("error %q does not name %s and offset %d", msg, c.walName, start)
			}
		}
	}
}

// readAllRecords reads a WAL with pebble's record.Reader.
func readAllRecords(t *testing.T, wal []byte) [][]byte {
	t.Helper()
	rd := record.NewReader(bytes.NewReader(wal), 0)
	var out [][]byte
	for {
		r, err := rd.Next()
		if err == io.EOF {
			return out
		}
		check(t, err)
		b, err := io.ReadAll(r)
		check(t, err)
		out = append(out, b)
	}
}

// The engine's WAL is the format pebble's record package reads, and
// readWAL reads what record.Writer writes: records of every size around
// the block and header boundaries.
func TestRecordFormatMatchesPebble(t *testing.T) {
	var payloads [][]byte
	for _, n := range []int{0, 1, 100, walBlockSize - 2*walChunkHeader - 3, walBlockSize - walChunkHeader, walBlockSize, 3*walBlockSize + 5} {
		for d := -8; d <= 8; d++ {
			if n+d >= 0 {
				p := make([]byte, n+d)
				for i := range p {
					p[i] = byte(i*7 + len(payloads))
				}
				payloads = append(payloads, p)
			}
		}
	}
	var buf bytes.Buffer
	w := record.NewWriter(&buf)
	for _, p := range payloads {
		_, err := w.WriteRecord(p)
		check(t, err)
	}
	var got [][]byte
	tail, err := readWAL("test", buf.Bytes(), maxBatchCeiling, func(off int, p []byte) error {
		got = append(got, bytes.Clone(p))
		return nil
	})
	check(t, err)
	if tail.end != buf.Len() || tail.cut != nil || len(got) != len(payloads) {
		t.Fatalf("read %d of %d records, up to %d of %d bytes (cut %+v)", len(got), len(payloads), tail.end, buf.Len(), tail.cut)
	}
	for i := range got {
		if !bytes.Equal(got[i], payloads[i]) {
			t.Fatalf("record %d differs", i)
		}
	}

	c := newWALCase(t, [][]byte{[]byte("a"), bytes.Repeat([]byte("b"), 70<<10), []byte("c")})
	recs := readAllRecords(t, c.wal)
	if len(recs) != len(c.ends)-1 {
		t.Fatalf("pebble reads %d records of the engine's %d", len(recs), len(c.ends)-1)
	}
}

// A batch over MaxBatchBytes is refused before anything is written, and
// stops the engine; the disk keeps the state before it.
func TestOversizedBatchFailsStop(t *testing.T) {
	fs := vfs.NewCrashableMem()
	e := mustOpen(t, fs, Options{MaxBatchBytes: 4 << 10})
	r, err := e.CreateRegion(bootstrapState(regionMeta(1, "", "", 1)))
	check(t, err)
	check(t, e.Sync())
	synced, size := viewOf(t, e), e.WALBytes()
	r.Put([]byte("k"), bytes.Repeat([]byte("v"), 5<<10))
	err = e.SyncAll()
	if !errors.Is(err, ErrBatchTooLarge) {
		t.Fatalf("sync of an oversized batch: %v", err)
	}
	if e.WALBytes() != size {
		t.Fatalf("WAL grew from %d to %d bytes", size, e.WALBytes())
	}
	r.Put([]byte("small"), []byte("v"))
	if err2 := e.SyncAll(); !errors.Is(err2, ErrBatchTooLarge) {
		t.Fatalf("sync after the failure: %v, want the first error again", err2)
	}
	if err2 := e.MaybeCheckpoint(); !errors.Is(err2, ErrBatchTooLarge) {
		t.Fatalf("checkpoint after the failure: %v, want the first error again", err2)
	}
	check(t, e.Close())
	sameView(t, "reopen after the refused batch", viewOf(t, mustOpen(t, fs, Options{})), synced)

	if _, err := Open(vfs.NewCrashableMem(), testDir, Options{MaxBatchBytes: maxBatchCeiling + 1}); err == nil {
		t.Fatal("open with MaxBatchBytes over the ceiling succeeded")
	}
}

// Recovery reads a long damaged tail in time linear in its size: the old
// reader searched every offset after a bad frame, checksumming up to the
// end of the file from each.
func TestLongGarbageTailIsCutQuickly(t *testing.T) {
	c := newWALCase(t, [][]byte{[]byte("a")})
	wal := bytes.Clone(c.wal)
	r := rng.New(7)
	garbage := make([]byte, 16<<20)
	for i := range garbage {
		garbage[i] = byte(r.Uint64())
	}
	e, err := c.open(t, append(wal, garbage...))
	check(t, err)
	sameView(t, "garbage tail cut", viewOf(t, e), c.views[len(c.views)-1])
}
