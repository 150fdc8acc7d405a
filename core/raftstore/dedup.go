package raftstore

import "time"

// recentWriteWindow is how long a store remembers the write requests it
// received. A duplicate delivered later than that (or after a restart,
// which forgets them) could apply twice: the real transport (TCP) never
// duplicates, and the simulated network delivers copies within its
// latency bounds.
const recentWriteWindow = 30 * time.Second

// clientRequest names a client request for duplicate detection.
type clientRequest struct{ client, id uint64 }

// writeWindow remembers the write requests a store received in the last
// recentWriteWindow, so that a network duplicate of one is not proposed a
// second time.
type writeWindow struct {
	seen  map[clientRequest]time.Time
	order []clientRequest // oldest first
}

func newWriteWindow() *writeWindow {
	return &writeWindow{seen: map[clientRequest]time.Time{}}
}

// seenBefore records request id of client, received now, and reports
// whether it was recorded already.
func (w *writeWindow) seenBefore(client, id uint64, now time.Time) bool {
	k := clientRequest{client, id}
	if _, ok := w.seen[k]; ok {
		return true
	}
	w.seen[k] = now
	w.order = append(w.order, k)
	return false
}

// expire forgets requests received more than the window before now.
func (w *writeWindow) expire(now time.Time) {
	n := 0
	for _, k := range w.order {
		if now.Sub(w.seen[k]) < recentWriteWindow {
			break
		}
		delete(w.seen, k)
		n++
	}
	w.order = w.order[n:]
}
