package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core/pb"
)

// Fuzzing (see docs/storage.md):
//
//	go test ./core/storage/ -run '^$' -fuzz FuzzWALReplay -fuzztime 3m
//	go test ./core/storage/ -run '^$' -fuzz FuzzCheckpoint -fuzztime 3m
//
// The seed corpora are in testdata/fuzz; `go test ./core/storage/` runs
// them. TestFuzzSeeds writes the generated ones:
//
//	go test ./core/storage/ -run TestFuzzSeeds -update-fuzz-seeds

var updateFuzzSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite the generated seeds under testdata/fuzz")

// fuzzStore is a closed store holding region 1 in its checkpoint, with an
// empty WAL after it.
type fuzzStore struct {
	files    map[string][]byte
	ckptName string
	walName  string
}

func newFuzzStore(t testing.TB) *fuzzStore {
	t.Helper()
	fs := vfs.NewCrashableMem()
	e := mustOpen(t, fs, Options{})
	_, err := e.CreateRegion(bootstrapState(regionMeta(1, "", "", 1)))
	check(t, err)
	check(t, e.Sync())
	check(t, e.checkpoint())
	check(t, e.Close())
	s := &fuzzStore{files: map[string][]byte{}}
	for _, n := range listDir(t, fs) {
		s.files[n] = readFileT(t, fs, n)
	}
	s.ckptName, s.walName = onlyFile(t, fs, "ckpt-"), onlyFile(t, fs, "wal-")
	return s
}

// open opens a copy of the store with the named files replaced.
func (s *fuzzStore) open(t testing.TB, replace map[string][]byte) (*Engine, *vfs.MemFS, error) {
	t.Helper()
	fs := vfs.NewCrashableMem()
	check(t, fs.MkdirAll(testDir, 0o755))
	for name, data := range s.files {
		if r, ok := replace[name]; ok {
			data = r
		}
		rewriteFile(t, fs, name, data)
	}
	e, err := Open(fs, testDir, Options{})
	return e, fs, err
}

// fuzzValues cuts data into at most 8 values. Each is a u16 length n, a
// u16 body length b, and b bytes of body repeated to length n (zeros if
// there is no body), so that a short input can make a record that spans
// blocks.
func fuzzValues(data []byte) [][]byte {
	var out [][]byte
	for len(data) >= 4 && len(out) < 8 {
		n := int(binary.LittleEndian.Uint16(data))
		b := int(binary.LittleEndian.Uint16(data[2:]))
		data = data[4:]
		body := data[:min(b, len(data))]
		data = data[len(body):]
		v := make([]byte, n)
		for i := 0; len(body) > 0 && i < n; i += len(body) {
			copy(v[i:], body)
		}
		out = append(out, v)
	}
	return out
}

// encodeFuzzValue is the fuzzValues encoding of body repeated to length n.
func encodeFuzzValue(buf []byte, n int, body []byte) []byte {
	buf = binary.LittleEndian.AppendUint16(buf, uint16(n))
	buf = binary.LittleEndian.AppendUint16(buf, uint16(len(body)))
	return append(buf, body...)
}

// tornWAL writes one record per value on top of the fuzz store (an entry
// and a put of the value, as walCase does) and returns the WAL, the state
// after each number of records and the WAL size then.
func (s *fuzzStore) tornWAL(t testing.TB, values [][]byte) ([]byte, []string, []int) {
	t.Helper()
	e, fs, err := s.open(t, nil)
	check(t, err)
	r := e.Region(1)
	views, ends := []string{viewOf(t, e).String()}, []int{0}
	for i, v := range values {
		idx := uint64(6 + i)
		check(t, r.Append([]*raftpb.Entry{ent(idx, 5, fmt.Sprintf("entry %d", idx))}))
		r.Put([]byte(fmt.Sprintf("key%03d", i)), v)
		check(t, e.Sync())
		views = append(views, viewOf(t, e).String())
		ends = append(ends, int(e.WALBytes()))
	}
	check(t, e.Close())
	return readFileT(t, fs, onlyFile(t, fs, "wal-")), views, ends
}

// FuzzWALReplay opens a store whose WAL after a valid checkpoint holds
// arbitrary bytes, and one whose WAL is a single valid record with the same
// bytes as payload (to reach the replay of whatever decodes): Open either
// succeeds or reports corruption, and never panics. Then it builds a valid
// WAL whose values come from the same bytes (so values may hold anything,
// framing included), damages its tail as a crash could (cut at any byte, or
// zeroed from a 4 KiB boundary) and requires Open to cut exactly the
// damaged records.
func FuzzWALReplay(f *testing.F) {
	s := newFuzzStore(f)
	f.Fuzz(func(t *testing.T, data []byte, cut uint32) {
		for _, wal := range [][]byte{data, recordFormatChunk(data)} {
			e, _, err := s.open(t, map[string][]byte{s.walName: wal})
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("open of a WAL of %d arbitrary bytes: %v, want success or ErrCorrupt", len(wal), err)
				}
			} else {
				viewOf(t, e)
			}
		}

		values := fuzzValues(data)
		if len(values) == 0 {
			return
		}
		wal, views, ends := s.tornWAL(t, values)
		at := int(cut) % (len(wal) + 1)
		damaged := map[string][]byte{
			"cut":    wal[:at],
			"zeroed": append(bytes.Clone(wal[:at/4096*4096]), make([]byte, len(wal)-at/4096*4096)...),
		}
		for how, img := range damaged {
			e, _, err := s.open(t, map[string][]byte{s.walName: img})
			if err != nil {
				t.Fatalf("WAL of %d bytes %s at %d: open: %v", len(wal), how, at, err)
			}
			keep := 0
			for k, end := range ends {
				if end <= len(img) && bytes.Equal(img[:end], wal[:end]) {
					keep = k
				}
			}
			if got := viewOf(t, e).String(); got != views[keep] {
				t.Fatalf("WAL of %d bytes %s at %d: recovered state is not the state after record %d:\n%s", len(wal), how, at, keep, got)
			}
		}
	})
}

// FuzzCheckpoint opens a store whose checkpoint holds arbitrary bytes, raw
// or behind a valid header (to reach the decoding): Open either succeeds or
// fails, and never panics. A store that opens reopens to the same state.
func FuzzCheckpoint(f *testing.F) {
	s := newFuzzStore(f)
	f.Fuzz(func(t *testing.T, data []byte, framed bool) {
		ck := data
		if framed {
			ck = encodeCheckpoint(data)
		}
		e, fs, err := s.open(t, map[string][]byte{s.ckptName: ck})
		if err != nil {
			return
		}
		want := viewOf(t, e).String()
		check(t, e.Close())
		e2, err := Open(fs, testDir, Options{})
		if err != nil {
			t.Fatalf("reopen of a store that opened: %v", err)
		}
		if got := viewOf(t, e2).String(); got != want {
			t.Fatalf("reopen changed the state:\n---- got\n%s---- want\n%s", got, want)
		}
	})
}

// TestFuzzSeeds writes the generated seed corpora with -update-fuzz-seeds.
// Seeds need not match the current encoding byte for byte, so the test
// does nothing without the flag.
func TestFuzzSeeds(t *testing.T) {
	if !*updateFuzzSeeds {
		t.Skip("run with -update-fuzz-seeds to rewrite the seeds")
	}
	s := newFuzzStore(t)
	seeds := map[string][]any{}

	// Valid WALs over the fuzz store's checkpoint, one record spanning
	// blocks, and the values of every kind of record as tornWAL input.
	type value struct {
		n    int // length, the body repeated
		body []byte
	}
	hostile := []value{}
	for _, v := range hostileValues() {
		hostile = append(hostile, value{len(v), v})
	}
	for i, vals := range [][]value{
		{{1, []byte("v")}},
		{{1, []byte("a")}, {300, []byte("b")}, {1, []byte("c")}},
		{{40 << 10, []byte("x")}, {1, []byte("y")}},
		hostile,
	} {
		var enc []byte
		for _, v := range vals {
			enc = encodeFuzzValue(enc, v.n, v.body)
		}
		wal, _, _ := s.tornWAL(t, fuzzValues(enc))
		seeds[fmt.Sprintf("FuzzWALReplay/valid-wal-%d", i)] = []any{wal, uint32(len(wal) / 2)}
		if i < 2 {
			// A batch that replays, as the payload of a framed record.
			seeds[fmt.Sprintf("FuzzWALReplay/batch-%d", i)] = []any{readAllRecords(t, wal)[0], uint32(0)}
		}
		seeds[fmt.Sprintf("FuzzWALReplay/values-%d", i)] = []any{enc, uint32(len(enc) * 3 / 4)}
	}
	// Batches of the other kinds of update, for the framed record.
	for i, us := range [][]*pb.RegionUpdate{
		{{RegionId: 1, Split: &pb.SplitRecord{Left: regionMeta(1, "", "m", 2), Right: bootstrapState(regionMeta(2, "m", "", 2))}}},
		{{RegionId: 3, Reset_: bootstrapState(regionMeta(3, "", "", 1))}},
		{
			{RegionId: 1, Entries: []*raftpb.Entry{ent(6, 5, "a"), ent(7, 5, "b")}, HardState: hardState(5, 0, 7)},
			{RegionId: 1, AppliedIndex: 7, CompactIndex: 6, CompactTerm: 5},
		},
		{{RegionId: 1, PeerState: pb.PeerState_TOMBSTONE, ConfState: &raftpb.ConfState{Voters: []uint64{1}}}},
	} {
		b, err := proto.Marshal(&pb.WalBatch{Seq: 1, Updates: us, Ident: &pb.StoreIdent{ClusterId: 1, StoreId: 2}})
		check(t, err)
		seeds[fmt.Sprintf("FuzzWALReplay/update-%d", i)] = []any{b, uint32(0)}
	}
	// The frame inside a value, as raw WAL bytes and as values, and a WAL
	// that is nothing but the forged frame or chunk.
	b := hostileBatch()
	seeds["FuzzWALReplay/frame-inside-value"] = []any{encodeFuzzValue(nil, len(oldFormatFrame(b)), oldFormatFrame(b)), uint32(60)}
	seeds["FuzzWALReplay/old-format-frame"] = []any{oldFormatFrame(b), uint32(0)}
	seeds["FuzzWALReplay/forged-chunk"] = []any{recordFormatChunk(b), uint32(0)}
	seeds["FuzzWALReplay/zero-block"] = []any{make([]byte, 4096), uint32(4096)}

	seeds["FuzzCheckpoint/valid"] = []any{s.files[s.ckptName], false}
	seeds["FuzzCheckpoint/valid-payload"] = []any{s.files[s.ckptName][ckptHeader:], true}
	seeds["FuzzCheckpoint/empty"] = []any{[]byte{}, false}

	for name, args := range seeds {
		path := filepath.Join("testdata", "fuzz", filepath.FromSlash(name))
		check(t, os.MkdirAll(filepath.Dir(path), 0o755))
		check(t, os.WriteFile(path, encodeCorpusFile(args), 0o644))
	}
}

// encodeCorpusFile writes fuzz arguments in the "go test fuzz v1" format.
func encodeCorpusFile(args []any) []byte {
	var b bytes.Buffer
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", v)
		case uint32:
			fmt.Fprintf(&b, "uint32(%d)\n", v)
		case bool:
			fmt.Fprintf(&b, "bool(%v)\n", v)
		default:
			panic(fmt.Sprintf("corpus type %T", a))
		}
	}
	return b.Bytes()
}

// encodeCheckpoint frames a checkpoint payload with its header, as a
// checkpoint file holds it.
func encodeCheckpoint(payload []byte) []byte {
	buf := make([]byte, ckptHeader+len(payload))
	copy(buf[ckptHeader:], payload)
	frameCheckpoint(buf)
	return buf
}
