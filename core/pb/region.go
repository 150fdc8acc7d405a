package pb

import (
	"bytes"
	"fmt"
)

// Hand-written methods on the generated types: the one home of what a region,
// an epoch and a request mean. Every package asks these instead of keeping
// its own copy of "key in range" or "same epoch".

// ContainsKey reports whether key lies in the region's range [start, end),
// an empty end meaning +infinity.
func (r *Region) ContainsKey(key []byte) bool {
	return KeyInRange(key, r.GetStartKey(), r.GetEndKey())
}

// KeyInRange reports whether key lies in [start, end), an empty end meaning
// +infinity.
func KeyInRange(key, start, end []byte) bool {
	return bytes.Compare(key, start) >= 0 && (len(end) == 0 || bytes.Compare(key, end) < 0)
}

// Overlaps reports whether the ranges of r and o share a key.
func (r *Region) Overlaps(o *Region) bool {
	return RangesOverlap(r.GetStartKey(), r.GetEndKey(), o.GetStartKey(), o.GetEndKey())
}

// RangesOverlap reports whether [aStart, aEnd) and [bStart, bEnd) share a
// key, an empty end meaning +infinity. Both ranges must be non-empty.
func RangesOverlap(aStart, aEnd, bStart, bEnd []byte) bool {
	return (len(bEnd) == 0 || bytes.Compare(aStart, bEnd) < 0) &&
		(len(aEnd) == 0 || bytes.Compare(bStart, aEnd) < 0)
}

// SameRange reports whether r and o cover exactly the same keys.
func (r *Region) SameRange(o *Region) bool {
	return bytes.Equal(r.GetStartKey(), o.GetStartKey()) && bytes.Equal(r.GetEndKey(), o.GetEndKey())
}

// PeerOnStore returns the region's peer on store, or nil.
func (r *Region) PeerOnStore(store uint64) *Peer {
	for _, p := range r.GetPeers() {
		if p.GetStoreId() == store {
			return p
		}
	}
	return nil
}

// PeerByID returns the region's peer with raft id id, or nil.
func (r *Region) PeerByID(id uint64) *Peer {
	for _, p := range r.GetPeers() {
		if p.GetId() == id {
			return p
		}
	}
	return nil
}

// Initialized reports whether the region has a range (and so data). A region
// whose epoch version is 0 is a placeholder peer's: it waits for a snapshot.
func (r *Region) Initialized() bool { return r.GetEpoch().GetVersion() > 0 }

// InJointConfig reports whether the region is in a joint configuration:
// some peer is an incoming or a demoting voter (raft leaves it on its own).
func (r *Region) InJointConfig() bool {
	for _, p := range r.GetPeers() {
		if role := p.GetRole(); role == PeerRole_INCOMING_VOTER || role == PeerRole_DEMOTING_VOTER {
			return true
		}
	}
	return false
}

// RangeString renders the region's range as ["start","end") with keys
// quoted, or ["start",+inf) for an unbounded end.
func (r *Region) RangeString() string { return FormatRange(r.GetStartKey(), r.GetEndKey()) }

// FormatRange renders [start, end) with keys quoted, an empty end as +inf.
func FormatRange(start, end []byte) string {
	e := "+inf"
	if len(end) > 0 {
		e = fmt.Sprintf("%q", end)
	}
	return fmt.Sprintf("[%q,%s)", start, e)
}

// Describe renders the region's id, range and epoch for logs and errors.
func (r *Region) Describe() string {
	return fmt.Sprintf("region %d %s v%d/c%d", r.GetId(), r.RangeString(),
		r.GetEpoch().GetVersion(), r.GetEpoch().GetConfVer())
}

// Describe renders the epoch as "conf_ver C, version V". Never format a
// protobuf message with %v where the text can reach the wire or a trace:
// protobuf-go varies its text output by build, which would make a
// simulation's trace depend on the binary, not only on the seed.
func (e *Epoch) Describe() string {
	return fmt.Sprintf("conf_ver %d, version %d", e.GetConfVer(), e.GetVersion())
}

// Equal reports whether both components of the epochs are the same.
func (e *Epoch) Equal(o *Epoch) bool {
	return e.GetVersion() == o.GetVersion() && e.GetConfVer() == o.GetConfVer()
}

// Older reports whether e is strictly older than o: a lower version or a
// lower conf_ver. (An epoch with a higher version but a lower conf_ver is
// inconsistent; it counts as older so that no component ever goes down.)
func (e *Epoch) Older(o *Epoch) bool {
	return e.GetVersion() < o.GetVersion() || e.GetConfVer() < o.GetConfVer()
}
