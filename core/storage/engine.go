// Package storage is the durable engine of a store: every region's raft log,
// hard state, conf state, region meta, apply state and keys, kept in memory
// and made durable on a pebble vfs.FS through a checksummed write-ahead log
// and periodic checkpoints.
//
// All state lives in memory and is changed eagerly; each change is also
// queued as an update. Sync writes the queued updates of all regions as one
// WAL record (a pb.WalBatch) and syncs it once: the group commit of a ready
// round. Raft state (entries, hard state, snapshots, new regions) must be
// synced before the messages of the same round leave; applied keys and the
// apply index may lag, since raft replays committed entries after a crash.
//
// On disk a store directory holds checkpoint files (the whole state at one
// moment) and write-ahead log files (records after that moment):
//
//	ckpt-<seq>   "MRCKPT", version "02", length u64, crc32c u32, pb.Checkpoint
//	wal-<seq>    records in the LevelDB log format (pebble's record package:
//	             32 KiB blocks of checksummed chunks), one pb.WalBatch each
//
// The checkpoint's version also names the format of the WAL that follows
// it. Each batch carries a sequence number, one more than the batch before
// it; the checkpoint holds the next one.
//
// Recovery loads the newest checkpoint and replays the WAL of the same seq.
// The engine fails stop on any write or sync error, so at a crash only the
// last record can be unsynced. A record that cannot be read (a damaged or
// missing chunk) is therefore a torn write, and is cut, unless a later
// record begins after it: that is looked for only at chunk boundaries (every
// block starts with one, and a valid chunk gives the next), never inside a
// payload, so no value a client writes can pass for a record. A bad record
// followed by a later one, a sequence number out of order, or a bad
// checkpoint is corruption: Open returns an error wrapping ErrCorrupt that
// names the file and offset. Open always ends by writing a fresh checkpoint
// and a new empty WAL, so a cut tail is never appended to.
package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	iofs "io/fs"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble/v2/record"
	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/session"
)

// Options tune an engine.
type Options struct {
	// CheckpointBytes is the WAL size after which the engine writes a
	// checkpoint and starts a new WAL. Default 64 MiB.
	CheckpointBytes int64
	// MaxBatchBytes caps the encoded size of one WAL record (the updates of
	// one Sync). A Sync over it fails and stops the engine. Default 256 MiB;
	// at most 1 GiB, the most recovery reads back whatever the option says.
	MaxBatchBytes int64
	// SessionLimits bound the regions' session tables. They decide what
	// the state machine does, so every store of a cluster must use the
	// same.
	SessionLimits session.Limits
}

const (
	defaultCheckpointBytes = 64 << 20
	defaultMaxBatchBytes   = 256 << 20
	// maxBatchCeiling is the largest record recovery accepts. It does not
	// follow Options, so lowering MaxBatchBytes never makes a WAL unreadable.
	maxBatchCeiling = 1 << 30

	ckptMagic   = "MRCKPT"
	ckptVersion = 2 // 1: hand-rolled WAL frames; 2: record-format WAL
	// ckptHeader is the magic, the version as two ASCII digits, the payload
	// length u64 and a CRC-32C u32 of the version, length and payload.
	ckptHeader = len(ckptMagic) + 2 + 8 + 4
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

var (
	// ErrCorrupt marks data on disk that failed validation and cannot be
	// explained by a torn final write.
	ErrCorrupt = errors.New("storage: corrupt data")
	// ErrBatchTooLarge is the error of a Sync whose record would exceed
	// Options.MaxBatchBytes. The engine stops, as after a write error.
	ErrBatchTooLarge = errors.New("storage: wal batch too large")
)

// Engine owns a store's durable state.
type Engine struct {
	fs   vfs.FS
	dir  string
	opts Options

	ident       *pb.StoreIdent
	incarnation uint64
	regions     map[uint64]*Region

	wal      vfs.File
	walw     *record.Writer // writes records to wal
	walSeq   uint64
	walBytes int64
	batchSeq uint64 // seq of the next WAL record

	// failed is the first write or sync error: after it the disk state is
	// unknown, so the engine refuses to write more (fail-stop).
	failed error

	pending []*pb.RegionUpdate
	// written counts the times pending was emptied (written or subsumed
	// by a checkpoint): a region's session table may change the sessions
	// it handed out for pending updates once it has moved on.
	written       uint64
	pendingIdent  bool
	critical      bool               // pending holds raft state that must be synced before sending
	encodeBuf     []byte             // pendingBatches' buffer, reused
	encodeUpdates []*pb.RegionUpdate // pendingBatches' list of a batch's updates, reused
	freshUpdates  []pb.RegionUpdate  // newUpdate's slab: updates not handed out yet

	stats Stats
}

// Stats counts the engine's disk work.
type Stats struct {
	Records      uint64 // WAL records written
	RecordBytes  uint64 // bytes those took in the WAL, framing included
	Syncs        uint64
	Checkpoints  uint64
	TornTailCuts uint64 // WAL tails cut at recovery (a torn last record)
}

// Open recovers the engine stored in dir on fs, creating it if absent.
func Open(fs vfs.FS, dir string, opts Options) (*Engine, error) {
	if opts.CheckpointBytes <= 0 {
		opts.CheckpointBytes = defaultCheckpointBytes
	}
	if opts.MaxBatchBytes <= 0 {
		opts.MaxBatchBytes = defaultMaxBatchBytes
	}
	if opts.MaxBatchBytes > maxBatchCeiling {
		return nil, fmt.Errorf("storage: MaxBatchBytes %d is over the %d ceiling", opts.MaxBatchBytes, maxBatchCeiling)
	}
	e := &Engine{fs: fs, dir: dir, opts: opts, regions: map[uint64]*Region{}}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("storage: create %s: %w", dir, err)
	}
	if err := syncDirChain(fs, dir); err != nil {
		return nil, err
	}
	if err := e.recover(); err != nil {
		return nil, err
	}
	// This open is a new life of the store: its incarnation is one more
	// than any before, durable (in the checkpoint below) before Open
	// returns, so nothing this life does can be mistaken for an earlier
	// life's work.
	e.incarnation++
	if err := e.checkpoint(); err != nil {
		return nil, err
	}
	return e, nil
}

// Incarnation numbers this open of the engine: 1 for the first, one more
// on every later open. It is durable before Open returns.
func (e *Engine) Incarnation() uint64 { return e.incarnation }

// Close closes the WAL file. Pending records are not written.
func (e *Engine) Close() error {
	if e.wal == nil {
		return nil
	}
	err := e.wal.Close()
	e.wal = nil
	return err
}

// Stats returns counters of the engine's disk work.
func (e *Engine) Stats() Stats { return e.stats }

// Ident is the store identity recorded at bootstrap, nil before.
func (e *Engine) Ident() *pb.StoreIdent { return e.ident }

// SetIdent records the store identity.
func (e *Engine) SetIdent(id *pb.StoreIdent) {
	e.ident = id.CloneVT()
	e.pendingIdent = true
	e.critical = true
}

// RegionIDs lists the regions present (tombstones included), sorted.
func (e *Engine) RegionIDs() []uint64 {
	ids := make([]uint64, 0, len(e.regions))
	for id := range e.regions {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Region returns the region with id, or nil.
func (e *Engine) Region(id uint64) *Region { return e.regions[id] }

// CreateRegion installs a region from a whole state (bootstrap, a
// placeholder peer, or a peer re-added after its removal). It fails if the
// id is present and not a tombstone.
func (e *Engine) CreateRegion(ck *pb.RegionCheckpoint) (*Region, error) {
	id := ck.GetRegion().GetId()
	if id == 0 {
		return nil, fmt.Errorf("storage: create region: no region id")
	}
	if old, ok := e.regions[id]; ok && old.state != pb.PeerState_TOMBSTONE {
		return nil, fmt.Errorf("storage: create region %d: already exists", id)
	}
	r := newRegionFromCheckpoint(e, ck)
	e.regions[id] = r
	e.queue(&pb.RegionUpdate{RegionId: id, Reset_: cloneCk(ck)}, true)
	return r, nil
}

// HasPending reports whether records wait to be written.
func (e *Engine) HasPending() bool { return len(e.pending) > 0 || e.pendingIdent }

// NeedsSync reports whether pending records include raft state that must be
// durable before messages are sent.
func (e *Engine) NeedsSync() bool { return e.critical }

// newUpdate returns an empty update of region id, cut from a slab rather
// than allocated alone: a store queues a few updates per ready round. An
// update is never reused; a slab is garbage once its last update is.
func (e *Engine) newUpdate(id uint64) *pb.RegionUpdate {
	if len(e.freshUpdates) == 0 {
		e.freshUpdates = make([]pb.RegionUpdate, 32)
	}
	u := &e.freshUpdates[0]
	e.freshUpdates = e.freshUpdates[1:]
	u.RegionId = id
	return u
}

func (e *Engine) queue(u *pb.RegionUpdate, critical bool) {
	e.pending = append(e.pending, u)
	if critical {
		e.critical = true
	}
}

// Sync makes the pending updates durable if raft state is among them
// (entries, hard state, snapshots, new or split regions): the ready round's
// one synced write. When only lazy updates (applied keys, apply index,
// compaction) are pending it writes nothing; they ride on the next one.
// Any error stops the engine for good (fail-stop): the caller must stop the
// store, since the in-memory state is ahead of a disk state that is then
// unknown, and reopen it from disk.
func (e *Engine) Sync() error {
	if e.failed != nil {
		return e.failed
	}
	if !e.critical {
		return nil
	}
	return e.SyncAll()
}

// SyncAll makes every pending update durable, lazy ones included. The
// updates go out as WAL records of at most Options.MaxBatchBytes each, most
// often one, each synced before the next: a crash keeps a prefix of them,
// which is a state the engine passed through. One update larger than
// the limit alone is refused (ErrBatchTooLarge) before anything is written.
func (e *Engine) SyncAll() error {
	if e.failed != nil {
		return e.failed
	}
	if !e.HasPending() {
		return nil
	}
	batches, err := e.pendingBatches()
	if err != nil {
		e.failed = err
		return e.failed
	}
	// Each record is synced before the next is written: recovery takes a
	// bad record followed by a good one for corruption, so only the last
	// record may ever be unsynced. Any prefix of a split round is a state
	// the engine passed through.
	for _, payload := range batches {
		if _, err := e.walw.WriteRecord(payload); err != nil {
			e.failed = fmt.Errorf("storage: write wal %d: %w", e.walSeq, err)
			return e.failed
		}
		e.stats.Records++
		e.batchSeq++
		if err := e.wal.Sync(); err != nil {
			e.failed = fmt.Errorf("storage: sync wal %d: %w", e.walSeq, err)
			return e.failed
		}
	}
	size := e.walw.Size()
	e.stats.RecordBytes += uint64(size - e.walBytes)
	e.stats.Syncs++
	e.walBytes = size
	e.pendingDone()
	return nil
}

// pendingDone empties pending once its updates are written (or subsumed by
// a checkpoint): the array is kept, not the updates.
func (e *Engine) pendingDone() {
	clear(e.pending)
	e.pending = e.pending[:0]
	e.written++
	e.pendingIdent = false
	e.critical = false
}

// splitAppend cuts an update that only appends raft entries, larger than
// limit, into several appends of consecutive entries: replayed in order
// they append the same log. (A follower catching up can take in hundreds
// of megabytes of entries in one round.)
func splitAppend(u *pb.RegionUpdate, limit int) []*pb.RegionUpdate {
	var out []*pb.RegionUpdate
	part := &pb.RegionUpdate{RegionId: u.RegionId}
	size := 0
	for _, ent := range u.Entries {
		n := pb.RaftEntrySize(ent) + 6
		if len(part.Entries) > 0 && size+n > limit {
			out = append(out, part)
			part, size = &pb.RegionUpdate{RegionId: u.RegionId}, 0
		}
		part.Entries = append(part.Entries, ent)
		size += n
	}
	return append(out, part)
}

// maxKeptEncodeBuf is the largest encoding buffer the engine keeps from
// one Sync to the next: a huge round's is left to the garbage collector.
const maxKeptEncodeBuf = 1 << 20

// pendingBatches encodes the pending updates as WAL batches numbered from
// the next sequence number, each within Options.MaxBatchBytes. An update
// larger than half a batch that only appends entries is cut first
// (splitAppend). The batches share one buffer, which the engine reuses at
// its next Sync: they are only good until then.
func (e *Engine) pendingBatches() ([][]byte, error) {
	out := make([][]byte, 0, 1)
	buf := e.encodeBuf[:0]
	seq := e.batchSeq
	// The batches take turns with one list of updates, kept too: only
	// their encodings outlive them.
	batch := &pb.WalBatch{Seq: seq, Updates: e.encodeUpdates[:0]}
	if e.pendingIdent {
		batch.Ident = e.ident
	}
	size := batch.SizeVT()
	// exact is the batch's encoded size, as WalBatch.SizeVT would count
	// it from the updates' sizes taken for size (an estimate that decides
	// the batching): one more pass over the updates is saved.
	exact := size
	flush := func() error {
		start := len(buf)
		buf = slices.Grow(buf, exact)[:start+exact]
		m, err := batch.MarshalToSizedBufferVT(buf[start:])
		if err == nil && m != exact {
			err = fmt.Errorf("encoded %d bytes, sized %d", m, exact) // never: a bug in exact
		}
		if err != nil {
			return fmt.Errorf("storage: encode wal batch %d: %w", batch.Seq, err)
		}
		payload := buf[start : start+m : start+m]
		if int64(len(payload)) > e.opts.MaxBatchBytes {
			return fmt.Errorf("%w: wal batch %d is %d bytes, over the %d limit", ErrBatchTooLarge, batch.Seq, len(payload), e.opts.MaxBatchBytes)
		}
		out = append(out, payload)
		seq++
		clear(batch.Updates)
		batch = &pb.WalBatch{Seq: seq, Updates: batch.Updates[:0]}
		size = batch.SizeVT()
		exact = size
		return nil
	}
	add := func(u *pb.RegionUpdate, n int) error {
		if len(batch.Updates) > 0 && int64(size+n+6) > e.opts.MaxBatchBytes { // 6: at most a tag and length prefix
			if err := flush(); err != nil {
				return err
			}
		}
		batch.Updates = append(batch.Updates, u)
		size += n + 6
		exact += 1 + protowire.SizeVarint(uint64(n)) + n // the tag of field 2, the length, the update
		return nil
	}
	limit := int(e.opts.MaxBatchBytes / 2)
	for _, u := range e.pending {
		n := u.SizeVT()
		if len(u.Entries) > 1 && n > limit &&
			(&pb.RegionUpdate{RegionId: u.RegionId, Entries: u.Entries}).SizeVT() == n { // only entries
			for _, part := range splitAppend(u, limit) {
				if err := add(part, part.SizeVT()); err != nil {
					return nil, err
				}
			}
			continue
		}
		if err := add(u, n); err != nil {
			return nil, err
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if cap(buf) <= maxKeptEncodeBuf {
		e.encodeBuf = buf
	}
	e.encodeUpdates = batch.Updates
	return out, nil
}

// MaybeCheckpoint writes a checkpoint when the WAL has grown past the
// configured size. Pending records are subsumed by it.
func (e *Engine) MaybeCheckpoint() error {
	if e.failed != nil {
		return e.failed
	}
	if e.walBytes < e.opts.CheckpointBytes {
		return nil
	}
	if err := e.checkpoint(); err != nil {
		e.failed = err
		return err
	}
	return nil
}

// WALBytes is the size of the current WAL file.
func (e *Engine) WALBytes() int64 { return e.walBytes }

// checkpoint writes the whole in-memory state as checkpoint seq+1, starts
// WAL seq+1 and removes older files.
func (e *Engine) checkpoint() error {
	seq := e.walSeq + 1
	ck := &pb.Checkpoint{Ident: e.ident, WalSeq: seq, NextFrameSeq: e.batchSeq, Incarnation: e.incarnation}
	for _, id := range e.RegionIDs() {
		ck.Regions = append(ck.Regions, e.regions[id].checkpoint())
	}
	// Marshal straight into the file's buffer, after room for the header:
	// the same bytes as framing ck.MarshalVT(), without a second copy of
	// the whole state.
	buf := make([]byte, ckptHeader+ck.SizeVT())
	if _, err := ck.MarshalToSizedBufferVT(buf[ckptHeader:]); err != nil {
		return fmt.Errorf("storage: encode checkpoint %d: %w", seq, err)
	}
	frameCheckpoint(buf)

	name := e.fs.PathJoin(e.dir, ckptName(seq))
	tmp := name + ".tmp"
	f, err := e.fs.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("storage: create %s: %w", tmp, err)
	}
	if _, err := f.Write(buf); err != nil {
		f.Close()
		return fmt.Errorf("storage: write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("storage: sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("storage: close %s: %w", tmp, err)
	}
	if err := e.fs.Rename(tmp, name); err != nil {
		return fmt.Errorf("storage: rename %s: %w", tmp, err)
	}
	walName := e.fs.PathJoin(e.dir, walName(seq))
	wal, err := e.fs.Create(walName, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("storage: create %s: %w", walName, err)
	}
	if err := syncDir(e.fs, e.dir); err != nil {
		wal.Close()
		return err
	}
	if e.wal != nil {
		e.wal.Close()
	}
	// A fresh writer for a fresh file: its blocks start at offset 0, and
	// the first record is written like every other.
	e.wal = wal
	e.walw = record.NewWriter(wal)
	e.walSeq = seq
	e.walBytes = 0
	e.pendingDone()
	e.stats.Checkpoints++
	// Older files are garbage now; a crash before they are gone is harmless.
	names, err := e.fs.List(e.dir)
	if err != nil {
		return fmt.Errorf("storage: list %s: %w", e.dir, err)
	}
	sort.Strings(names)
	for _, n := range names {
		_, s, ok := parseName(n)
		stale := (ok && s < seq) || strings.HasSuffix(n, ".tmp")
		if !stale {
			continue
		}
		if err := e.fs.Remove(e.fs.PathJoin(e.dir, n)); err != nil {
			return fmt.Errorf("storage: remove %s: %w", n, err)
		}
	}
	return syncDir(e.fs, e.dir)
}

func ckptName(seq uint64) string { return fmt.Sprintf("ckpt-%016d", seq) }
func walName(seq uint64) string  { return fmt.Sprintf("wal-%016d", seq) }

func parseName(n string) (kind string, seq uint64, ok bool) {
	var rest string
	switch {
	case strings.HasPrefix(n, "ckpt-"):
		kind, rest = "ckpt", n[len("ckpt-"):]
	case strings.HasPrefix(n, "wal-"):
		kind, rest = "wal", n[len("wal-"):]
	default:
		return "", 0, false
	}
	s, err := strconv.ParseUint(rest, 10, 64)
	if err != nil {
		return "", 0, false
	}
	return kind, s, true
}

// recover loads the newest checkpoint and replays its WAL.
func (e *Engine) recover() error {
	names, err := e.fs.List(e.dir)
	if err != nil {
		return fmt.Errorf("storage: list %s: %w", e.dir, err)
	}
	sort.Strings(names) // MemFS lists in map order
	var ckpt uint64
	haveCkpt := false
	for _, n := range names {
		if kind, s, ok := parseName(n); ok && kind == "ckpt" && (!haveCkpt || s > ckpt) {
			ckpt, haveCkpt = s, true
		}
	}
	if !haveCkpt {
		// A crash in the first Open, after the first WAL was created but
		// before the directory sync that makes the checkpoint durable, can
		// leave that WAL without its checkpoint; it is empty, since frames
		// are written only after that sync. A WAL with data is corruption.
		for _, n := range names {
			if kind, _, ok := parseName(n); ok && kind == "wal" {
				st, err := e.fs.Stat(e.fs.PathJoin(e.dir, n))
				if err != nil {
					return fmt.Errorf("storage: stat %s: %w", n, err)
				}
				if st.Size() > 0 {
					return fmt.Errorf("%w: %s has a WAL file %s but no checkpoint", ErrCorrupt, e.dir, n)
				}
			}
		}
		return nil // a new store
	}
	if err := e.loadCheckpoint(ckpt); err != nil {
		return err
	}
	e.walSeq = ckpt
	return e.replayWAL(ckpt)
}

func (e *Engine) readFile(name string) ([]byte, error) {
	f, err := e.fs.Open(name)
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", name, err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("storage: read %s: %w", name, err)
	}
	return data, nil
}

// frameCheckpoint writes the header of a checkpoint file whose payload
// already fills buf[ckptHeader:].
func frameCheckpoint(buf []byte) {
	payload := buf[ckptHeader:]
	n := copy(buf, ckptMagic)
	n += copy(buf[n:], fmt.Sprintf("%02d", ckptVersion))
	binary.LittleEndian.PutUint64(buf[n:], uint64(len(payload)))
	n += 8
	sum := crc32.Update(crc32.Checksum(buf[len(ckptMagic):n], crcTable), crcTable, payload)
	binary.LittleEndian.PutUint32(buf[n:], sum)
}

// decodeCheckpoint checks a checkpoint file's header and returns its payload.
func decodeCheckpoint(data []byte) ([]byte, error) {
	if len(data) < ckptHeader || string(data[:len(ckptMagic)]) != ckptMagic {
		return nil, errors.New("bad header")
	}
	v := data[len(ckptMagic) : len(ckptMagic)+2]
	if v[0] < '0' || v[0] > '9' || v[1] < '0' || v[1] > '9' {
		return nil, fmt.Errorf("bad version %q", v)
	}
	if version := int(v[0]-'0')*10 + int(v[1]-'0'); version != ckptVersion {
		return nil, fmt.Errorf("format version %d, this build reads version %d only", version, ckptVersion)
	}
	lenAt := len(ckptMagic) + 2
	n := binary.LittleEndian.Uint64(data[lenAt:])
	if n != uint64(len(data)-ckptHeader) {
		return nil, fmt.Errorf("length %d, file holds %d", n, len(data)-ckptHeader)
	}
	payload := data[ckptHeader:]
	sum := crc32.Update(crc32.Checksum(data[len(ckptMagic):lenAt+8], crcTable), crcTable, payload)
	if sum != binary.LittleEndian.Uint32(data[lenAt+8:]) {
		return nil, errors.New("checksum mismatch")
	}
	return payload, nil
}

func (e *Engine) loadCheckpoint(seq uint64) error {
	name := e.fs.PathJoin(e.dir, ckptName(seq))
	data, err := e.readFile(name)
	if err != nil {
		return err
	}
	payload, err := decodeCheckpoint(data)
	if err != nil {
		return fmt.Errorf("%w: checkpoint %s: %v", ErrCorrupt, name, err)
	}
	ck := &pb.Checkpoint{}
	if err := proto.Unmarshal(payload, ck); err != nil {
		return fmt.Errorf("%w: checkpoint %s: %v", ErrCorrupt, name, err)
	}
	if ck.WalSeq != seq {
		return fmt.Errorf("%w: checkpoint %s names wal seq %d", ErrCorrupt, name, ck.WalSeq)
	}
	e.ident = ck.Ident
	e.batchSeq = ck.NextFrameSeq
	e.incarnation = ck.Incarnation
	for _, rc := range ck.Regions {
		id := rc.GetRegion().GetId()
		if _, dup := e.regions[id]; dup || id == 0 {
			return fmt.Errorf("%w: checkpoint %s: region %d twice or unnamed", ErrCorrupt, name, id)
		}
		if err := checkRegionState(rc); err != nil {
			return fmt.Errorf("%w: checkpoint %s: %v", ErrCorrupt, name, err)
		}
		e.regions[id] = newRegionFromCheckpoint(e, rc)
	}
	return nil
}

// checkRegionState checks what a region's raft log needs to be readable:
// entries numbered one by one from the truncated index.
func checkRegionState(rc *pb.RegionCheckpoint) error {
	for i, en := range rc.GetEntries() {
		if want := rc.GetTruncatedIndex() + 1 + uint64(i); en.GetIndex() != want {
			return fmt.Errorf("region %d: log entry %d has index %d, want %d", rc.GetRegion().GetId(), i, en.GetIndex(), want)
		}
	}
	return nil
}

func (e *Engine) replayWAL(seq uint64) error {
	name := e.fs.PathJoin(e.dir, walName(seq))
	if _, err := e.fs.Stat(name); err != nil {
		if errors.Is(err, iofs.ErrNotExist) {
			// The checkpoint was made durable but the crash came before its
			// WAL file was: nothing was written after the checkpoint.
			return nil
		}
		return fmt.Errorf("storage: stat %s: %w", name, err)
	}
	data, err := e.readFile(name)
	if err != nil {
		return err
	}
	tail, err := readWAL(name, data, maxBatchCeiling, func(off int, payload []byte) error {
		b := &pb.WalBatch{}
		if err := proto.Unmarshal(payload, b); err != nil {
			return fmt.Errorf("%w: %v", errUnreadable, err)
		}
		if b.Seq != e.batchSeq {
			return fmt.Errorf("%w: wal %s offset %d: record seq %d, expected %d", ErrCorrupt, name, off, b.Seq, e.batchSeq)
		}
		// A record that passed its checksums was written as it reads: if
		// it does not apply, the state it applies to is wrong.
		if err := e.replayBatch(b); err != nil {
			return fmt.Errorf("%w: wal %s offset %d record %d: %w", ErrCorrupt, name, off, b.Seq, err)
		}
		e.batchSeq++
		return nil
	})
	if err != nil {
		return err
	}
	if tail.end < len(data) {
		e.stats.TornTailCuts++
	}
	return nil
}

func (e *Engine) replayBatch(b *pb.WalBatch) error {
	if b.Ident != nil {
		e.ident = b.Ident
	}
	for _, u := range b.Updates {
		if err := e.replayUpdate(u); err != nil {
			return err
		}
	}
	return nil
}

func (e *Engine) replayUpdate(u *pb.RegionUpdate) error {
	if u.Reset_ != nil {
		if err := checkRegionState(u.Reset_); err != nil {
			return err
		}
		e.regions[u.RegionId] = newRegionFromCheckpoint(e, u.Reset_)
	}
	r := e.regions[u.RegionId]
	if r == nil {
		return fmt.Errorf("%w: update for region %d, which does not exist", ErrCorrupt, u.RegionId)
	}
	// Sessions: drops, then upserts (Region.logSessions keeps a record's
	// drops ahead of its upserts).
	r.sessions.Replay(session.Changes{
		Clock: u.SessionClockMs, Sweep: u.SessionSweepMs, Horizon: u.SessionHorizonMs,
		Upserts: u.Sessions, Dropped: u.SessionsDropped,
	})
	for _, m := range u.Mutations {
		if m.Delete {
			r.kv.Delete(m.Key)
		} else {
			r.kv.Set(m.Key, m.Value, m.Version)
		}
	}
	if u.Split != nil {
		if _, err := r.split(u.Split); err != nil {
			return err
		}
	}
	if u.Region != nil {
		r.meta = u.Region
	}
	if u.PeerState != pb.PeerState_NORMAL {
		r.applyPeerState(u.PeerState)
	}
	if u.AppliedIndex != 0 {
		r.applied = u.AppliedIndex
	}
	if u.CompactIndex != 0 {
		if err := r.compact(u.CompactIndex, u.CompactTerm); err != nil {
			return err
		}
	}
	if len(u.Entries) > 0 {
		if err := r.append(u.Entries); err != nil {
			return err
		}
	}
	if u.HardState != nil {
		r.hard = u.HardState
	}
	if u.ConfState != nil {
		r.conf = u.ConfState
	}
	return nil
}

func cloneCk(ck *pb.RegionCheckpoint) *pb.RegionCheckpoint {
	return ck.CloneVT()
}

// syncDir makes the directory entries of dir durable.
func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return fmt.Errorf("storage: open dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("storage: sync dir %s: %w", dir, err)
	}
	return nil
}

// syncDirChain syncs dir and each of its ancestors, so a fresh directory
// survives a crash. A relative dir's chain ends with "." (the current
// directory holds its first element).
func syncDirChain(fs vfs.FS, dir string) error {
	for {
		if err := syncDir(fs, dir); err != nil {
			return err
		}
		parent := fs.PathDir(dir)
		if parent == dir || parent == "" {
			return nil
		}
		dir = parent
	}
}
