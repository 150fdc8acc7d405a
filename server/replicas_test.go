package server_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core/kv"
	"github.com/multiraft/multiraft/core/storage"
	"github.com/multiraft/multiraft/kvclient"
)

// keyHistory is what one writer knows of one key it writes.
type keyHistory struct {
	acked     []byte   // the value of the last acknowledged write
	ambiguous [][]byte // values of writes whose outcome is unknown
}

// TestReplicasAgreeAfterRestarts runs writers over gRPC against three
// stores while each store in turn is restarted (its WAL replayed), the
// writers reusing their key and value buffers the moment a call returns.
// Then every acknowledged write must be readable, and every two replicas
// of a region at the same applied index must hold the same pairs and the
// same session table, read back from their data directories. A leader
// applies the command it proposed and a follower the one it decoded, so
// this is also the check that both apply the same thing.
func TestReplicasAgreeAfterRestarts(t *testing.T) {
	c := startCluster(t, "m")
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	const writers = 4
	histories := make([]map[string]*keyHistory, writers)
	var acked atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range writers {
		histories[w] = map[string]*keyHistory{}
		cl, err := kvclient.New(ctx, kvclient.Config{PD: c.pd.Addr()})
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			key, buf := make([]byte, 0, 32), make([]byte, 3000)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key = fmt.Appendf(key[:0], "%c-w%d-%d", "amz"[r.IntN(3)], w, r.IntN(8))
				val := buf[:[]int{0, 1, 7, 100, 3000}[r.IntN(5)]]
				for j := range val {
					val[j] = byte(r.IntN(256))
				}
				if len(val) > 8 {
					copy(val, fmt.Sprintf("%08d", i))
				}
				h := histories[w][string(key)]
				if h == nil {
					h = &keyHistory{}
					histories[w][string(key)] = h
				}
				cctx, cc := context.WithTimeout(ctx, 3*time.Second)
				_, err := cl.Put(cctx, key, val)
				cc()
				if err == nil {
					h.acked = bytes.Clone(val)
					acked.Add(1)
				} else {
					h.ambiguous = append(h.ambiguous, bytes.Clone(val))
				}
				// The caller's buffers are its own again: scribble them.
				for j := range val {
					val[j] ^= 0xff
				}
				for j := range key {
					key[j] = 'X'
				}
			}
		}()
	}

	// waitForWrites waits until n more writes were acknowledged, bounded.
	waitForWrites := func(n int64) {
		t.Helper()
		want := acked.Load() + n
		poll := time.NewTicker(10 * time.Millisecond)
		defer poll.Stop()
		bound := time.After(30 * time.Second)
		for acked.Load() < want {
			select {
			case <-poll.C:
			case <-bound:
				t.Fatalf("fewer than %d writes acknowledged within 30 s", n)
			}
		}
	}
	for round := range 4 {
		waitForWrites(50)
		id := uint64(round%3 + 1)
		c.stores[id].Close()
		c.startStore(id, c.addrs[id])
	}
	waitForWrites(50)
	close(stop)
	wg.Wait()

	cl, err := kvclient.New(ctx, kvclient.Config{PD: c.pd.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	checked := 0
	for w := range histories {
		for k, h := range histories[w] {
			if h.acked == nil && len(h.ambiguous) == 0 {
				continue
			}
			got, err := cl.Get(ctx, []byte(k))
			if err != nil {
				t.Fatalf("get %s: %v", k, err)
			}
			ok := h.acked == nil && !got.Found || got.Found && bytes.Equal(got.Value, h.acked)
			for _, a := range h.ambiguous { // one may have landed after the last acknowledged
				ok = ok || got.Found && bytes.Equal(got.Value, a)
			}
			if !ok {
				t.Errorf("key %s: read %s (found %v), last acknowledged %s", k, brief(got.Value), got.Found, brief(h.acked))
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no key was written")
	}

	// Compare the replicas on disk. A follower may be a commit behind when
	// its store closes; then close again after one more write to each
	// region, a bounded number of times, until every region has two
	// replicas at the same applied index.
	for attempt := 0; ; attempt++ {
		compared := compareReplicas(t, c)
		if compared || attempt == 5 {
			if !compared {
				t.Fatal("some region never had two replicas at the same applied index on disk")
			}
			break
		}
		for id := uint64(1); id <= 3; id++ {
			c.startStore(id, c.addrs[id])
		}
		for _, k := range []string{"a-last", "z-last"} {
			if _, err := cl.Put(ctx, []byte(k), []byte(fmt.Sprint(attempt))); err != nil {
				t.Fatalf("put %s: %v", k, err)
			}
		}
	}
}

// compareReplicas closes every store of c, reads each one's regions from
// its data directory, and fails t where two replicas at the same applied
// index differ. It reports whether every region had such a pair.
func compareReplicas(t *testing.T, c *testCluster) bool {
	t.Helper()
	for id, s := range c.stores {
		s.Close()
		delete(c.stores, id)
	}
	type replica struct {
		store    uint64
		applied  uint64
		pairs    []kv.Item
		sessions []byte
	}
	byRegion := map[uint64][]replica{}
	for id := uint64(1); id <= 3; id++ {
		e, err := storage.Open(vfs.Default, filepath.Join(c.dir, fmt.Sprintf("store%d", id), "raft"), storage.Options{})
		if err != nil {
			t.Fatalf("reopen store %d: %v", id, err)
		}
		for _, rid := range e.RegionIDs() {
			r := e.Region(rid)
			var items []kv.Item
			r.Data().Ascend(func(it kv.Item) bool { items = append(items, it); return true })
			sessions, err := proto.MarshalOptions{Deterministic: true}.Marshal(r.Sessions().Proto())
			if err != nil {
				t.Fatal(err)
			}
			byRegion[rid] = append(byRegion[rid], replica{id, r.Applied(), items, sessions})
		}
		e.Close()
	}
	every := len(byRegion) > 0
	for rid, reps := range byRegion {
		paired := false
		for i, a := range reps {
			for _, b := range reps[i+1:] {
				if a.applied != b.applied {
					continue
				}
				paired = true
				if len(a.pairs) != len(b.pairs) {
					t.Errorf("region %d at %d: store %d holds %d keys, store %d %d", rid, a.applied, a.store, len(a.pairs), b.store, len(b.pairs))
					continue
				}
				for k := range a.pairs {
					x, y := a.pairs[k], b.pairs[k]
					if !bytes.Equal(x.Key, y.Key) || !bytes.Equal(x.Value, y.Value) || x.Version != y.Version {
						t.Errorf("region %d at %d: stores %d and %d differ at %q", rid, a.applied, a.store, b.store, x.Key)
					}
				}
				if !bytes.Equal(a.sessions, b.sessions) {
					t.Errorf("region %d at %d: session tables differ between stores %d and %d", rid, a.applied, a.store, b.store)
				}
			}
		}
		every = every && paired
	}
	return every
}

// brief shows a value by its length and first bytes.
func brief(v []byte) string {
	if len(v) > 12 {
		return fmt.Sprintf("%x... (%d bytes)", v[:12], len(v))
	}
	return fmt.Sprintf("%x", v)
}
