// Package storage is the durable engine of a store: every region's raft log,
// hard state, conf state, region meta, apply state and keys, kept in memory
// and made durable on a pebble vfs.FS through a checksummed write-ahead log
// and periodic checkpoints.
//
// All state lives in memory and is changed eagerly; each change is also
// queued as a record. Sync writes the queued records of all regions as one
// frame and syncs it once: the group commit of a ready round. Raft state
// (entries, hard state, snapshots, new regions) must be synced before the
// messages of the same round leave; applied keys and the apply index may
// lag, since raft replays committed entries after a crash.
//
// On disk a store directory holds checkpoint files (the whole state at one
// moment) and write-ahead log files (frames after that moment):
//
//	ckpt-<seq>   magic, length, crc32c, pb.Checkpoint
//	wal-<seq>    frames: length, crc32c, pb.WalBatch
//
// Recovery loads the newest checkpoint and replays the WAL of the same seq.
// A frame that fails its checksum is a torn write if no valid frame follows
// it (only the last frame can be unsynced, since the engine fails stop on a
// write or sync error); the tail is cut. A bad frame followed by a good one,
// or a bad checkpoint, is corruption and Open returns an error naming the
// file and offset. Open always ends by writing a fresh checkpoint and a new
// empty WAL, so a cut tail is never appended to.
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

	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core/pb"
)

// Options tune an engine.
type Options struct {
	// CheckpointBytes is the WAL size after which the engine writes a
	// checkpoint and starts a new WAL. Default 64 MiB.
	CheckpointBytes int64
}

const (
	defaultCheckpointBytes = 64 << 20
	maxFrameBytes          = 1 << 30
	frameHeader            = 8 // length u32, crc32c u32
	ckptMagic              = "MRCKPT01"
	ckptHeader             = len(ckptMagic) + 8 + 4
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt marks data on disk that failed validation and cannot be
// explained by a torn final write.
var ErrCorrupt = errors.New("storage: corrupt data")

// Engine owns a store's durable state.
type Engine struct {
	fs   vfs.FS
	dir  string
	opts Options

	ident   *pb.StoreIdent
	regions map[uint64]*Region

	wal      vfs.File
	walSeq   uint64
	walBytes int64
	frameSeq uint64 // seq of the next frame

	// failed is the first write or sync error: after it the disk state is
	// unknown, so the engine refuses to write more (fail-stop).
	failed error

	pending      []*pb.RegionUpdate
	pendingIdent bool
	critical     bool // pending holds raft state that must be synced before sending

	stats Stats
}

// Stats counts the engine's disk work.
type Stats struct {
	Frames       uint64
	FrameBytes   uint64
	Syncs        uint64
	Checkpoints  uint64
	TornTailCuts uint64 // torn frames cut at recovery
}

// Open recovers the engine stored in dir on fs, creating it if absent.
func Open(fs vfs.FS, dir string, opts Options) (*Engine, error) {
	if opts.CheckpointBytes <= 0 {
		opts.CheckpointBytes = defaultCheckpointBytes
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
	if err := e.checkpoint(); err != nil {
		return nil, err
	}
	return e, nil
}

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
	e.ident = proto.Clone(id).(*pb.StoreIdent)
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

func (e *Engine) queue(u *pb.RegionUpdate, critical bool) {
	e.pending = append(e.pending, u)
	if critical {
		e.critical = true
	}
}

// Sync writes every pending record as one frame and syncs it. When only
// lazy records (applied keys, apply index, compaction) are pending and force
// is false, it writes nothing. A write or sync error is returned and the
// caller must stop the store: the disk state is then unknown.
func (e *Engine) Sync(force bool) error {
	if e.failed != nil {
		return e.failed
	}
	if !e.HasPending() || (!force && !e.critical) {
		return nil
	}
	batch := &pb.WalBatch{Seq: e.frameSeq, Updates: e.pending}
	if e.pendingIdent {
		batch.Ident = e.ident
	}
	payload, err := proto.Marshal(batch)
	if err != nil {
		return fmt.Errorf("storage: encode frame %d: %w", e.frameSeq, err)
	}
	if len(payload) > maxFrameBytes {
		return fmt.Errorf("storage: frame %d is %d bytes, over the %d limit", e.frameSeq, len(payload), maxFrameBytes)
	}
	buf := make([]byte, frameHeader+len(payload))
	binary.LittleEndian.PutUint32(buf[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(buf[4:8], crc32.Checksum(payload, crcTable))
	copy(buf[frameHeader:], payload)
	if _, err := e.wal.Write(buf); err != nil {
		e.failed = fmt.Errorf("storage: write wal %d: %w", e.walSeq, err)
		return e.failed
	}
	if err := e.wal.Sync(); err != nil {
		e.failed = fmt.Errorf("storage: sync wal %d: %w", e.walSeq, err)
		return e.failed
	}
	e.stats.Frames++
	e.stats.FrameBytes += uint64(len(buf))
	e.stats.Syncs++
	e.walBytes += int64(len(buf))
	e.frameSeq++
	e.pending = nil
	e.pendingIdent = false
	e.critical = false
	return nil
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
	ck := &pb.Checkpoint{Ident: e.ident, WalSeq: seq, NextFrameSeq: e.frameSeq}
	for _, id := range e.RegionIDs() {
		ck.Regions = append(ck.Regions, e.regions[id].checkpoint())
	}
	payload, err := proto.Marshal(ck)
	if err != nil {
		return fmt.Errorf("storage: encode checkpoint %d: %w", seq, err)
	}
	buf := make([]byte, ckptHeader+len(payload))
	copy(buf, ckptMagic)
	binary.LittleEndian.PutUint64(buf[len(ckptMagic):], uint64(len(payload)))
	binary.LittleEndian.PutUint32(buf[len(ckptMagic)+8:], crc32.Checksum(payload, crcTable))
	copy(buf[ckptHeader:], payload)

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
	e.wal = wal
	e.walSeq = seq
	e.walBytes = 0
	e.pending = nil
	e.pendingIdent = false
	e.critical = false
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

func (e *Engine) loadCheckpoint(seq uint64) error {
	name := e.fs.PathJoin(e.dir, ckptName(seq))
	data, err := e.readFile(name)
	if err != nil {
		return err
	}
	if len(data) < ckptHeader || string(data[:len(ckptMagic)]) != ckptMagic {
		return fmt.Errorf("%w: checkpoint %s: bad header", ErrCorrupt, name)
	}
	n := binary.LittleEndian.Uint64(data[len(ckptMagic):])
	sum := binary.LittleEndian.Uint32(data[len(ckptMagic)+8:])
	if n != uint64(len(data)-ckptHeader) {
		return fmt.Errorf("%w: checkpoint %s: length %d, file holds %d", ErrCorrupt, name, n, len(data)-ckptHeader)
	}
	payload := data[ckptHeader:]
	if crc32.Checksum(payload, crcTable) != sum {
		return fmt.Errorf("%w: checkpoint %s: checksum mismatch", ErrCorrupt, name)
	}
	ck := &pb.Checkpoint{}
	if err := proto.Unmarshal(payload, ck); err != nil {
		return fmt.Errorf("%w: checkpoint %s: %v", ErrCorrupt, name, err)
	}
	if ck.WalSeq != seq {
		return fmt.Errorf("%w: checkpoint %s names wal seq %d", ErrCorrupt, name, ck.WalSeq)
	}
	e.ident = ck.Ident
	e.frameSeq = ck.NextFrameSeq
	for _, rc := range ck.Regions {
		id := rc.GetRegion().GetId()
		if _, dup := e.regions[id]; dup || id == 0 {
			return fmt.Errorf("%w: checkpoint %s: region %d twice or unnamed", ErrCorrupt, name, id)
		}
		e.regions[id] = newRegionFromCheckpoint(e, rc)
	}
	return nil
}

// parseFrame decodes the frame at off, or reports why it is not one.
func parseFrame(data []byte, off int) (*pb.WalBatch, int, bool) {
	if len(data)-off < frameHeader {
		return nil, 0, false
	}
	n := int(binary.LittleEndian.Uint32(data[off:]))
	sum := binary.LittleEndian.Uint32(data[off+4:])
	if n == 0 || n > maxFrameBytes || n > len(data)-off-frameHeader {
		return nil, 0, false
	}
	payload := data[off+frameHeader : off+frameHeader+n]
	if crc32.Checksum(payload, crcTable) != sum {
		return nil, 0, false
	}
	b := &pb.WalBatch{}
	if err := proto.Unmarshal(payload, b); err != nil {
		return nil, 0, false
	}
	return b, frameHeader + n, true
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
	off := 0
	for off < len(data) {
		b, n, ok := parseFrame(data, off)
		if ok && b.Seq != e.frameSeq {
			return fmt.Errorf("%w: wal %s offset %d: frame seq %d, expected %d", ErrCorrupt, name, off, b.Seq, e.frameSeq)
		}
		if !ok {
			// Torn tail or corruption? Only the last frame can be torn: if a
			// valid later frame exists, this one was synced and is corrupt.
			for p := off + 1; p+frameHeader <= len(data); p++ {
				if later, _, ok := parseFrame(data, p); ok && later.Seq >= e.frameSeq {
					return fmt.Errorf("%w: wal %s offset %d: bad frame %d followed by valid frame %d at offset %d",
						ErrCorrupt, name, off, e.frameSeq, later.Seq, p)
				}
			}
			e.stats.TornTailCuts++
			return nil
		}
		if err := e.replayBatch(b); err != nil {
			return fmt.Errorf("storage: wal %s offset %d frame %d: %w", name, off, b.Seq, err)
		}
		e.frameSeq++
		off += n
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
		e.regions[u.RegionId] = newRegionFromCheckpoint(e, u.Reset_)
	}
	r := e.regions[u.RegionId]
	if r == nil {
		return fmt.Errorf("%w: update for region %d, which does not exist", ErrCorrupt, u.RegionId)
	}
	for _, m := range u.Mutations {
		if m.Delete {
			r.kv.Delete(m.Key)
		} else {
			r.kv.Set(m.Key, m.Value, m.Version)
		}
	}
	if u.Split != nil {
		if _, err := r.applySplit(u.Split, false); err != nil {
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
	return proto.Clone(ck).(*pb.RegionCheckpoint)
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
