package sim

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// TestEventQueueOrder: pushes and pops in any interleaving come out in
// (time, scheduling order) order, ties included.
func TestEventQueueOrder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var q eventQueue
		var ref []queued
		seq := uint64(0)
		for range rapid.IntRange(0, 200).Draw(t, "ops") {
			if len(ref) > 0 && rapid.IntRange(0, 2).Draw(t, "pop") == 0 {
				got := q.pop()
				e := q.event(got.slot)
				want := ref[0]
				ref = ref[1:]
				if got.at != want.at || got.seq != want.seq {
					t.Fatalf("popped (%v,%d), want (%v,%d)", got.at, got.seq, want.at, want.seq)
				}
				if e.what != fmt.Sprint(want.seq) {
					t.Fatalf("popped (%v,%d) with the event of %s", got.at, got.seq, e.what)
				}
				q.release(got.slot)
				continue
			}
			seq++
			e := queued{at: time.Duration(rapid.IntRange(0, 5).Draw(t, "at")), seq: seq}
			*q.push(e.at, e.seq) = event{what: fmt.Sprint(seq)}
			ref = append(ref, e)
			slices.SortStableFunc(ref, func(a, b queued) int {
				if a.before(&b) {
					return -1
				}
				if b.before(&a) {
					return 1
				}
				return 0
			})
		}
		if q.len() != len(ref) {
			t.Fatalf("queue holds %d, want %d", q.len(), len(ref))
		}
	})
}
