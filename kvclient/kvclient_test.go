package kvclient

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/multiraft/multiraft/core/client"
)

// bareClient is a Client whose loop does not run: what a call submits stays
// in its queue for the test to inspect.
func bareClient() *Client {
	return &Client{in: newQueue(), stop: make(chan struct{}), done: make(chan struct{})}
}

// A call whose context is already done submits nothing: nothing can be
// written, so it fails with the context's error, not as ambiguous.
func TestCallWithADoneContextSubmitsNothing(t *testing.T) {
	c := bareClient()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Put(ctx, []byte("k"), []byte("v"))
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrAmbiguous) {
		t.Fatalf("Put with a cancelled context: %v, want context.Canceled and not ambiguous", err)
	}
	if reqs, _ := c.in.take(); len(reqs) != 0 {
		t.Fatalf("%d requests submitted, want none", len(reqs))
	}
}

// A write the caller gave up on (its context ended while it waited) stays
// live in the client: it must hold its own copy of the key and value, not
// the caller's buffers, which are the caller's to reuse once Put returns.
func TestAbandonedWriteDoesNotReadTheCallersBuffers(t *testing.T) {
	c := bareClient()
	ctx, cancel := context.WithCancel(context.Background())
	key, val := []byte("k-original"), []byte("value-the-caller-wrote")
	errc := make(chan error, 1)
	go func() {
		_, err := c.Put(ctx, key, val)
		errc <- err
	}()
	var reqs []request
	bound := time.After(10 * time.Second)
	for len(reqs) == 0 { // wait for the submission, bounded
		select {
		case <-c.in.signal:
		case <-bound:
			t.Fatal("Put submitted nothing within 10 s")
		}
		reqs, _ = c.in.take()
	}
	cancel()
	if err := <-errc; !errors.Is(err, ErrAmbiguous) {
		t.Fatalf("abandoned Put: %v, want ErrAmbiguous", err)
	}
	copy(key, "k-SCRIBBLE")
	copy(val, "GARBAGE-GARBAGE-GARBAG")
	op := reqs[0].op
	if op.Kind != client.Put || string(op.Key) != "k-original" || string(op.Value) != "value-the-caller-wrote" {
		t.Fatalf("the queued write reads the caller's reused buffers: %s %q=%q", op.Kind, op.Key, op.Value)
	}
}
