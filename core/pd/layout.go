package pd

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/multiraft/multiraft/core/pb"
)

// RangeSpec is one key range [Start, End) of the initial layout. An empty End
// means +infinity.
type RangeSpec struct {
	Start, End []byte
}

// String renders the range as ["start","end") with keys quoted, or
// ["start",+inf) for an unbounded end.
func (r RangeSpec) String() string { return pb.FormatRange(r.Start, r.End) }

// Layout is the cluster PD starts with: the initial regions, how many
// replicas each has, and the stores that exist.
type Layout struct {
	Ranges   []RangeSpec // initial regions; together they must tile the keyspace exactly
	Replicas int         // replicas per region, 1..len(Stores)
	Stores   []uint64    // store ids (NodeIDs), distinct and non-zero
}

// LayoutFromSplitKeys builds the layout whose regions are cut at splitKeys:
// ["", k1), [k1, k2), ..., [kn, +inf). The keys are used in the order given
// and must be strictly increasing and non-empty; New reports the empty range
// that any other order or a duplicate key produces. The slices are copied.
func LayoutFromSplitKeys(splitKeys [][]byte, replicas int, stores []uint64) Layout {
	ranges := make([]RangeSpec, 0, len(splitKeys)+1)
	var start []byte
	for _, k := range splitKeys {
		end := bytes.Clone(k)
		if end == nil {
			end = []byte{}
		}
		ranges = append(ranges, RangeSpec{Start: start, End: end})
		start = end
	}
	ranges = append(ranges, RangeSpec{Start: start})
	return Layout{Ranges: ranges, Replicas: replicas, Stores: slices.Clone(stores)}
}

// ErrInvalidLayout is the error every layout problem wraps; the message of
// the wrapping *LayoutError names the ranges or stores at fault.
var ErrInvalidLayout = errors.New("pd: invalid initial layout")

// LayoutError is a rejected initial layout.
type LayoutError struct {
	Reason string // what is wrong, naming the ranges or stores involved
}

func (e *LayoutError) Error() string { return "pd: initial layout: " + e.Reason }

// Unwrap makes errors.Is(err, ErrInvalidLayout) hold.
func (e *LayoutError) Unwrap() error { return ErrInvalidLayout }

func layoutErr(format string, args ...any) error {
	return &LayoutError{Reason: fmt.Sprintf(format, args...)}
}

// cmpEnd orders end keys, empty (+inf) last.
func cmpEnd(a, b []byte) int {
	switch {
	case len(a) == 0 && len(b) == 0:
		return 0
	case len(a) == 0:
		return 1
	case len(b) == 0:
		return -1
	}
	return bytes.Compare(a, b)
}

// validateLayout checks l and returns its ranges sorted by start key (a copy)
// and its stores sorted by id (a copy).
func validateLayout(l Layout) ([]RangeSpec, []uint64, error) {
	if len(l.Stores) == 0 {
		return nil, nil, layoutErr("no stores")
	}
	stores := slices.Clone(l.Stores)
	slices.Sort(stores)
	for i, s := range stores {
		if s == 0 {
			return nil, nil, layoutErr("store id 0 is not allowed")
		}
		if i > 0 && stores[i-1] == s {
			return nil, nil, layoutErr("store id %d is listed twice", s)
		}
	}
	if l.Replicas <= 0 {
		return nil, nil, layoutErr("replicas per region must be positive, got %d", l.Replicas)
	}
	if l.Replicas > len(stores) {
		return nil, nil, layoutErr("%d replicas per region but only %d stores", l.Replicas, len(stores))
	}
	if len(l.Ranges) == 0 {
		return nil, nil, layoutErr("no ranges: keys [\"\",+inf) belong to no range")
	}
	ranges := slices.Clone(l.Ranges)
	for _, r := range ranges {
		if len(r.End) != 0 && bytes.Compare(r.Start, r.End) >= 0 {
			return nil, nil, layoutErr("range %s is empty (start >= end)", r)
		}
	}
	slices.SortStableFunc(ranges, func(a, b RangeSpec) int {
		if c := bytes.Compare(a.Start, b.Start); c != 0 {
			return c
		}
		return cmpEnd(a.End, b.End)
	})
	if first := ranges[0]; len(first.Start) != 0 {
		return nil, nil, layoutErr("first range %s does not start at \"\": keys %s belong to no range",
			first, pb.FormatRange(nil, first.Start))
	}
	for i := 1; i < len(ranges); i++ {
		prev, cur := ranges[i-1], ranges[i]
		switch c := bytes.Compare(prev.End, cur.Start); {
		case len(prev.End) == 0 || c > 0:
			return nil, nil, layoutErr("ranges %s and %s overlap", prev, cur)
		case c < 0:
			return nil, nil, layoutErr("gap between %s and %s: keys %s belong to no range",
				prev, cur, pb.FormatRange(prev.End, cur.Start))
		}
	}
	if last := ranges[len(ranges)-1]; len(last.End) != 0 {
		return nil, nil, layoutErr("last range %s ends at %s, not +inf: keys %s belong to no range",
			last, fmt.Sprintf("%q", last.End), pb.FormatRange(last.End, nil))
	}
	return ranges, stores, nil
}
