package checker

import (
	"bytes"
	"errors"
	"fmt"
	"sort"

	"github.com/multiraft/multiraft/core/pb"
)

// RegionView is one holder's view of one region: PD's routing entry, or a
// store's replica of the region.
type RegionView struct {
	Holder     string // "pd" or "store 3"
	ID         uint64
	Start, End []byte // End empty = +infinity
	ConfVer    uint64
	Version    uint64
	Keys       [][]byte // keys of data this holder holds for the region (nil for PD)
}

// rangeString renders the region's range as ["a","m") or ["p",+inf).
func (r RegionView) rangeString() string {
	return pb.FormatRange(r.Start, r.End)
}

// String renders the region as `region 2 ["a","m")`.
func (r RegionView) String() string {
	return fmt.Sprintf("region %d %s", r.ID, r.rangeString())
}

func (r RegionView) epochString() string {
	return fmt.Sprintf("epoch {conf_ver %d, version %d}", r.ConfVer, r.Version)
}

// endLess compares two range ends, an empty end being +infinity.
func endLess(a, b []byte) bool {
	if len(a) == 0 {
		return false
	}
	if len(b) == 0 {
		return true
	}
	return bytes.Compare(a, b) < 0
}

// sortedByStart returns a copy of regions sorted by start key, then id.
func sortedByStart(regions []RegionView) []RegionView {
	s := append([]RegionView(nil), regions...)
	sort.SliceStable(s, func(i, j int) bool {
		if c := bytes.Compare(s[i].Start, s[j].Start); c != 0 {
			return c < 0
		}
		return s[i].ID < s[j].ID
	})
	return s
}

// checkWellFormed reports regions whose range is empty or inverted and ids
// listed more than once.
func checkWellFormed(holder string, regions []RegionView) []error {
	var errs []error
	seen := make(map[uint64]bool, len(regions))
	for _, r := range regions {
		if len(r.End) > 0 && bytes.Compare(r.Start, r.End) >= 0 {
			errs = append(errs, fmt.Errorf("%s: %s has an empty or inverted range", holder, r))
		}
		if seen[r.ID] {
			errs = append(errs, fmt.Errorf("%s: region %d is listed more than once", holder, r.ID))
		}
		seen[r.ID] = true
	}
	return errs
}

// overlapErr describes an overlap of a (earlier start) and b.
func overlapErr(holder string, a, b RegionView) error {
	end := b.End
	if endLess(a.End, b.End) {
		end = a.End
	}
	return fmt.Errorf("%s: %s overlaps %s: keys %s are in both",
		holder, a, b, pb.FormatRange(b.Start, end))
}

// CheckNoOverlap checks that no two of a holder's regions overlap (and that
// each has a non-empty range and is listed once). The error lists every
// problem found.
func CheckNoOverlap(holder string, regions []RegionView) error {
	errs := checkWellFormed(holder, regions)
	s := sortedByStart(regions)
	// Compare each region with every earlier one that reaches past its
	// start: the earlier regions are kept in `open` while they do.
	var open []RegionView
	for _, r := range s {
		var still []RegionView
		for _, o := range open {
			if len(o.End) == 0 || bytes.Compare(o.End, r.Start) > 0 {
				errs = append(errs, overlapErr(holder, o, r))
				still = append(still, o)
			}
		}
		open = append(still, r)
	}
	return errors.Join(errs...)
}

// CheckCoverage checks that a holder's regions (normally PD's) tile the key
// space: sorted by start, the first starts at "", each ends where the next
// starts, the last ends at +inf. The error lists every gap and overlap.
func CheckCoverage(holder string, regions []RegionView) error {
	errs := checkWellFormed(holder, regions)
	if len(regions) == 0 {
		errs = append(errs, fmt.Errorf("%s: no regions: keys %s have no region", holder, pb.FormatRange(nil, nil)))
		return errors.Join(errs...)
	}
	s := sortedByStart(regions)
	if len(s[0].Start) != 0 {
		errs = append(errs, fmt.Errorf("%s: first %s does not start at \"\": keys %s have no region",
			holder, s[0], pb.FormatRange(nil, s[0].Start)))
	}
	for i := 1; i < len(s); i++ {
		prev, cur := s[i-1], s[i]
		switch {
		case len(prev.End) == 0 || bytes.Compare(prev.End, cur.Start) > 0:
			errs = append(errs, overlapErr(holder, prev, cur))
		case bytes.Compare(prev.End, cur.Start) < 0:
			errs = append(errs, fmt.Errorf("%s: gap between %s and %s: keys %s have no region",
				holder, prev, cur, pb.FormatRange(prev.End, cur.Start)))
		}
	}
	// The region reaching furthest must reach +inf.
	last := s[0]
	for _, r := range s[1:] {
		if endLess(last.End, r.End) {
			last = r
		}
	}
	if len(last.End) != 0 {
		errs = append(errs, fmt.Errorf("%s: last %s does not end at +inf: keys %s have no region",
			holder, last, pb.FormatRange(last.End, nil)))
	}
	return errors.Join(errs...)
}

// CheckDataInRange checks that every key a holder keeps for a region lies in
// the region's range. The error lists every stray key.
func CheckDataInRange(regions []RegionView) error {
	var errs []error
	for _, r := range regions {
		for _, k := range r.Keys {
			if !pb.KeyInRange(k, r.Start, r.End) {
				errs = append(errs, fmt.Errorf("%s: %s holds key %q outside its range", r.Holder, r, k))
			}
		}
	}
	return errors.Join(errs...)
}

// CheckAgreement checks that every region a store holds that PD also knows
// (same id) has the same range and epoch at both. Regions PD does not know
// are not judged. The error lists every disagreement, sorted by holder and id.
func CheckAgreement(pd []RegionView, stores []RegionView) error {
	var errs []error
	byID := make(map[uint64]RegionView, len(pd))
	for _, r := range pd {
		if _, dup := byID[r.ID]; dup {
			errs = append(errs, fmt.Errorf("pd: region %d is listed more than once", r.ID))
			continue
		}
		byID[r.ID] = r
	}
	s := append([]RegionView(nil), stores...)
	sort.SliceStable(s, func(i, j int) bool {
		if s[i].Holder != s[j].Holder {
			return s[i].Holder < s[j].Holder
		}
		return s[i].ID < s[j].ID
	})
	for _, r := range s {
		p, ok := byID[r.ID]
		if !ok {
			continue
		}
		if bytes.Equal(r.Start, p.Start) && bytes.Equal(r.End, p.End) &&
			r.ConfVer == p.ConfVer && r.Version == p.Version {
			continue
		}
		errs = append(errs, fmt.Errorf("%s: %s %s disagrees with pd: %s %s",
			r.Holder, r, r.epochString(), p, p.epochString()))
	}
	return errors.Join(errs...)
}

type epochKey struct {
	holder string
	region uint64
}

type epoch struct{ confVer, version uint64 }

// EpochMonitor checks that the epoch of a region, as seen by one holder,
// never goes backwards. The zero value is ready to use. It remembers the
// last accepted epoch per (holder, region); an observation that regresses
// is reported and not remembered.
type EpochMonitor struct {
	last map[epochKey]epoch
}

// Observe records that holder has regionID at epoch {confVer, version}. It
// returns an error if either number is lower than at the last accepted
// observation for that holder and region.
func (m *EpochMonitor) Observe(holder string, regionID uint64, confVer, version uint64) error {
	if m.last == nil {
		m.last = make(map[epochKey]epoch)
	}
	k := epochKey{holder, regionID}
	prev, seen := m.last[k]
	if seen && (confVer < prev.confVer || version < prev.version) {
		return fmt.Errorf("%s: region %d epoch went backwards: conf_ver %d -> %d, version %d -> %d",
			holder, regionID, prev.confVer, confVer, prev.version, version)
	}
	m.last[k] = epoch{confVer, version}
	return nil
}

// Forget drops what the monitor knows of holder's replica of regionID, for
// a replica that was destroyed on purpose (e.g. removed from the region).
func (m *EpochMonitor) Forget(holder string, regionID uint64) {
	delete(m.last, epochKey{holder, regionID})
}
