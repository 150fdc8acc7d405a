package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// The WAL is written with pebble's record.Writer, in the LevelDB log format
// ("legacy" chunks): the file is a sequence of 32 KiB blocks; each block
// holds tightly packed chunks, and a chunk never crosses a block boundary.
// A chunk is
//
//	checksum u32 | length u16 | type u8 | payload (length bytes)
//
// where the checksum covers the type and the payload, and the type says
// whether the chunk is a whole record (full) or the first, a middle or the
// last piece of one. When fewer than a header's 7 bytes remain in a block,
// the writer fills them with zeros and starts the next chunk at the next
// block. So every block starts with a chunk header, whatever the records
// hold, and a record's payload can never be read as framing.
//
// The reader below is ours, not pebble's record.Reader: for legacy chunks
// that reader reports every invalid chunk as an unexpected end of the log,
// even with valid records after it (it can confirm corruption only with the
// "WAL sync" chunks that pebble's LogWriter writes, and LogWriter runs its
// own flusher goroutine), and on a checksum mismatch it looks for a single
// flipped bit by checksumming the whole chunk once per bit: 262,144
// checksums of 32 KiB for a full chunk, about 0.7 s.
const (
	walBlockSize   = 32 << 10
	walChunkHeader = 7 // checksum u32, length u16, type u8

	chunkFull   = 1
	chunkFirst  = 2
	chunkMiddle = 3
	chunkLast   = 4

	// sectorSize is the unit a disk is assumed to write atomically: after a
	// crash each aligned 512-byte sector of unsynced data holds what was
	// written or reads as zeros (or is gone, past the end of the file).
	sectorSize = 512
)

// chunkChecksum is the checksum of a chunk as pebble computes it: CRC-32C
// of the type byte and the payload, then rotated right by 15 bits and offset
// by a constant, so that data holding its own CRC does not look checksummed.
func chunkChecksum(typ byte, payload []byte) uint32 {
	c := crc32.Update(0, crcTable, []byte{typ})
	c = crc32.Update(c, crcTable, payload)
	return (c>>15 | c<<17) + 0xa282ead8
}

// chunk is one parsed chunk of a WAL file.
type chunk struct {
	off     int // offset of the header
	typ     byte
	payload []byte
	next    int // offset just past the payload
}

// walReader reads the records of a WAL file held in memory.
type walReader struct {
	data     []byte
	maxBytes int // a longer record cannot have been written
}

func blockEnd(off int) int { return (off/walBlockSize + 1) * walBlockSize }

// skipPadding moves off past the zeros that end a block too full for
// another chunk header.
func skipPadding(off int) int {
	if end := blockEnd(off); end-off < walChunkHeader {
		return end
	}
	return off
}

// chunkAt parses the chunk whose header is at off (a chunk boundary, with
// room for a header in its block). It returns a reason when the bytes there
// are not a valid chunk.
func (w *walReader) chunkAt(off int) (chunk, string) {
	if len(w.data)-off < walChunkHeader {
		return chunk{}, fmt.Sprintf("the file ends %d bytes into a chunk header", len(w.data)-off)
	}
	h := w.data[off : off+walChunkHeader]
	sum := binary.LittleEndian.Uint32(h[0:4])
	n := int(binary.LittleEndian.Uint16(h[4:6]))
	c := chunk{off: off, typ: h[6], next: off + walChunkHeader + n}
	switch {
	case sum == 0 && n == 0 && c.typ == 0:
		return chunk{}, "zeroed chunk header"
	case c.typ < chunkFull || c.typ > chunkLast:
		return chunk{}, fmt.Sprintf("chunk type %d", c.typ)
	case c.next > blockEnd(off):
		return chunk{}, fmt.Sprintf("chunk of %d bytes crosses the block boundary", n)
	case c.next > len(w.data):
		return chunk{}, fmt.Sprintf("the file ends inside a chunk of %d bytes", n)
	}
	c.payload = w.data[off+walChunkHeader : c.next]
	if chunkChecksum(c.typ, c.payload) != sum {
		return chunk{}, "chunk checksum mismatch"
	}
	return c, ""
}

// trustedNext returns where the chunk after the invalid chunk at off begins,
// if the invalid chunk's header can be believed: it is whole, has a valid
// type, fits its block, and every sector it touches holds a non-zero byte
// of it. A header meeting this was written as it reads (a sector that a
// crash did not write reads as zeros, and a written header is never all
// zeros), so only its payload is damaged and its length is right. Anything
// else might be a header torn by a crash, whose length could point into a
// payload.
func (w *walReader) trustedNext(off int) (int, bool) {
	if len(w.data)-off < walChunkHeader {
		return 0, false
	}
	h := w.data[off : off+walChunkHeader]
	next := off + walChunkHeader + int(binary.LittleEndian.Uint16(h[4:6]))
	if h[6] < chunkFull || h[6] > chunkLast || next > blockEnd(off) {
		return 0, false
	}
	for s := off; s < off+walChunkHeader; {
		e := min(off+walChunkHeader, (s/sectorSize+1)*sectorSize)
		if allZero(w.data[s:e]) {
			return 0, false
		}
		s = e
	}
	return next, true
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// walProblem describes where and why a WAL stops being a sequence of valid
// records.
type walProblem struct {
	record int    // offset of the first chunk of the record that cannot be read
	at     int    // offset of the chunk (or end of file) at fault
	reason string // what is wrong there
	// resume is a chunk boundary after the fault from which the rest of its
	// block can be walked, or -1 when there is none to trust.
	resume int
}

// next reads the record whose first chunk is at or after off (after any
// block padding). It returns the record's payload and the offset just past
// it, or done at a clean end of file, or the problem that stops reading.
func (w *walReader) next(off int) (start int, payload []byte, end int, done bool, p *walProblem) {
	start = skipPadding(off)
	if start >= len(w.data) {
		return start, nil, start, true, nil
	}
	var buf []byte
	at := start
	for first := true; ; first = false {
		if at >= len(w.data) {
			return start, nil, 0, false, &walProblem{record: start, at: at, resume: -1,
				reason: "the file ends inside the record"}
		}
		c, bad := w.chunkAt(at)
		if bad != "" {
			next, ok := w.trustedNext(at)
			if !ok {
				next = -1
			}
			return start, nil, 0, false, &walProblem{record: start, at: at, reason: bad, resume: next}
		}
		begins := c.typ == chunkFull || c.typ == chunkFirst
		if begins != first {
			// A valid chunk out of order: resume at it, so that a record it
			// begins counts as a later record.
			return start, nil, 0, false, &walProblem{record: start, at: at, resume: at,
				reason: fmt.Sprintf("chunk type %d out of order", c.typ)}
		}
		if len(buf)+len(c.payload) > w.maxBytes {
			return start, nil, 0, false, &walProblem{record: start, at: at, resume: at,
				reason: fmt.Sprintf("record longer than %d bytes", w.maxBytes)}
		}
		if c.typ == chunkFull {
			return start, c.payload, c.next, false, nil
		}
		buf = append(buf, c.payload...)
		if c.typ == chunkLast {
			return start, buf, c.next, false, nil
		}
		at = skipPadding(c.next)
	}
}

// laterRecord looks for a valid chunk that begins a record after problem p,
// at chunk boundaries only: from p.resume to the end of its block, then from
// the start of every later block. Chunks are walked from a boundary only
// while they are valid, so no offset inside a payload is ever read as a
// header. It returns the chunk's offset, or -1.
func (w *walReader) laterRecord(p *walProblem) int {
	from := p.at
	if p.resume >= 0 {
		if off := w.walkBlock(p.resume); off >= 0 {
			return off
		}
		from = max(from, p.resume)
	}
	for b := blockEnd(from); b < len(w.data); b += walBlockSize {
		if off := w.walkBlock(b); off >= 0 {
			return off
		}
	}
	return -1
}

// walkBlock walks the valid chunks from the boundary off to the end of its
// block and returns the offset of the first one that begins a record, or -1.
func (w *walReader) walkBlock(off int) int {
	end := blockEnd(off)
	for end-off >= walChunkHeader && off < len(w.data) {
		c, bad := w.chunkAt(off)
		if bad != "" {
			return -1
		}
		if c.typ == chunkFull || c.typ == chunkFirst {
			return off
		}
		off = c.next
	}
	return -1
}

// errUnreadable marks a record whose chunks are valid but whose payload a
// visitor cannot decode; it is judged like a damaged chunk.
var errUnreadable = errors.New("undecodable record")

// walTail is how reading a WAL ended.
type walTail struct {
	end int         // offset just past the last good record
	cut *walProblem // why reading stopped before the end of the file, if it did
}

// readWAL calls visit with the offset and payload of each record in order.
// Reading stops at a clean end of file, at an error of visit, or at the
// first record that cannot be read (a damaged or missing chunk, or a payload
// visit rejects with errUnreadable). Such a record is a torn tail, and is
// cut, when no later record begins after it; otherwise it had been synced
// before a later write and readWAL returns an error wrapping ErrCorrupt.
// That rule relies on the engine's fail-stop: only the last record can be
// unsynced at a crash.
func readWAL(name string, data []byte, maxBytes int, visit func(off int, payload []byte) error) (walTail, error) {
	w := &walReader{data: data, maxBytes: maxBytes}
	off := 0
	for {
		start, payload, end, done, p := w.next(off)
		if done {
			return walTail{end: off}, nil
		}
		if p == nil {
			err := visit(start, payload)
			if err == nil {
				off = end
				continue
			}
			if !errors.Is(err, errUnreadable) {
				return walTail{}, err
			}
			p = &walProblem{record: start, at: start, reason: err.Error(), resume: end}
		}
		if later := w.laterRecord(p); later >= 0 {
			return walTail{}, fmt.Errorf("%w: wal %s offset %d: record unreadable (%s at offset %d), yet a later record begins at offset %d",
				ErrCorrupt, name, p.record, p.reason, p.at, later)
		}
		return walTail{end: off, cut: p}, nil
	}
}
