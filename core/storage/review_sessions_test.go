package storage

import (
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/rng"
	"github.com/multiraft/multiraft/core/session"
)

// Review (sessions), passing: a store that crashes and replays comes back with the
// session table it had at its durable applied index, and replaying the
// same entries from there decides exactly as before (sweeps, expiry,
// eviction, dropped markers, recorded refusals included), across
// checkpoints.
func TestSessionTableSurvivesCrashesAndReplaysTheSame(t *testing.T) {
	for seed := uint64(1); seed <= 30; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { sessionReplayRun(t, seed) })
	}
}

type sessEntry struct {
	now uint64
	w   *pb.Session
	key string
}

func sessionReplayRun(t *testing.T, seed uint64) {
	r := rng.New(seed)
	fs := vfs.NewMem()
	opts := Options{CheckpointBytes: 4 << 10, SessionLimits: session.Limits{TTL: time.Second, MaxSessions: 3, MaxResults: 3}}
	e := mustOpen(t, fs, opts)
	meta := regionMeta(1, "", "", 1)
	if _, err := e.CreateRegion(bootstrapState(meta)); err != nil {
		t.Fatal(err)
	}
	check(t, e.SyncAll())

	// The log: entries 6.. with proposal times and session writes.
	var log []sessEntry
	seqs := map[string]uint64{}
	started := map[string]uint64{} // "id/seq" -> when first sent, the same in every retry
	now := uint64(1)
	for i := 0; i < 400; i++ {
		now += uint64(r.Intn(300))
		id := fmt.Sprintf("s%d", r.Intn(6))
		seqs[id]++
		seq := seqs[id]
		if r.Intn(5) == 0 && seq > 1 {
			seq = uint64(1 + r.Intn(int(seq))) // a retry
		}
		low := seq - uint64(r.Intn(int(seq)))
		k := fmt.Sprint(id, "/", seq)
		if _, ok := started[k]; !ok {
			started[k] = now - min(now-1, uint64(r.Intn(1500))) // up to a TTL and a half before
		}
		log = append(log, sessEntry{now: now, w: &pb.Session{Id: []byte(id), Sequence: seq, Lowest: low, StartedMs: started[k]}, key: fmt.Sprintf("k%d", r.Intn(20))})
	}
	want := map[uint64]*pb.SessionTable{} // applied index -> table after it
	apply := func(e *Engine, idx uint64) {
		reg := e.Region(1)
		en := log[idx-6]
		reg.AdvanceSessions(en.now)
		if v, _ := reg.AdmitSession(en.w); v == session.Apply {
			ver := reg.Put([]byte(en.key), []byte("v"))
			reg.RecordSession(en.w, &pb.KvResponse{Result: &pb.KvResponse_Put{Put: &pb.PutResponse{Version: ver}}})
		}
		reg.SetApplied(idx)
		got := reg.Sessions().Proto()
		if w, ok := want[idx]; ok && !proto.Equal(w, got) {
			t.Fatalf("seed %d: applying entry %d again gives another table:\nfirst %v\nnow   %v", seed, idx, w, got)
		}
		want[idx] = got
	}
	idx := uint64(6)
	for idx < uint64(6+len(log)) {
		apply(e, idx)
		idx++
		switch x := r.Intn(10); {
		case x < 3:
			check(t, e.SyncAll())
		case x < 4:
			check(t, e.Sync())
		}
		check(t, e.MaybeCheckpoint())
		if r.Intn(15) == 0 { // crash: what was not written is lost
			e.Close()
			e = mustOpen(t, fs, opts)
			reg := e.Region(1)
			got := reg.Sessions().Proto()
			if w := want[reg.Applied()]; reg.Applied() > 5 && !proto.Equal(w, got) {
				t.Fatalf("seed %d: after a crash at applied %d the table is\n%v\nwant\n%v", seed, reg.Applied(), got, w)
			}
			idx = reg.Applied() + 1 // raft replays from the durable applied index
		}
	}
}
