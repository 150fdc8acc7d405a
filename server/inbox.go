package server

import "sync"

// inbox is what goroutines hand to a loop: envelopes and functions to run
// on the loop's goroutine. Producers never block; the loop takes
// everything queued at once, so what arrived during a Flush is handled
// together before the next one. Beyond limit queued envelopes, Put refuses
// (the caller drops the message or answers busy).
type inbox[T any] struct {
	mu     sync.Mutex
	items  []T
	spare  []T
	signal chan struct{}
	limit  int
}

func newInbox[T any](limit int) *inbox[T] {
	return &inbox[T]{signal: make(chan struct{}, 1), limit: limit}
}

// Put queues items; false if the inbox is full (nothing was queued).
func (q *inbox[T]) Put(items ...T) bool {
	q.mu.Lock()
	if q.limit > 0 && len(q.items)+len(items) > q.limit {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, items...)
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
	return true
}

// Take returns everything queued. The slice is valid until the next Take.
func (q *inbox[T]) Take() []T {
	q.mu.Lock()
	out := q.items
	clear(q.spare)
	q.items = q.spare[:0]
	q.spare = out
	q.mu.Unlock()
	return out
}

// Len is the number of queued items.
func (q *inbox[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}
