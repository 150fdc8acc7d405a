package storage

// Adversarial review (branch review-hard): tests expected to FAIL on the
// code as reviewed.

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/multiraft/multiraft/sim/simfs"
)

// A round over MaxBatchBytes is written as several WAL records under ONE
// sync (SyncAll). Recovery's torn-tail rule rests on "only the last record
// can be unsynced" (fail-stop after every sync): a bad record followed by a
// valid one is corruption. With several records per sync that premise is
// gone: a crash before the sync completes can zero a 4 KiB block of the
// first record and keep a later block holding the next record's first
// chunk. The crash image is one the engine's own disk model allows
// (sim/simfs: each unsynced 4 KiB block kept or not), the engine acknowledged
// nothing of the round, and yet Open fails with ErrCorrupt: the store can
// never restart. (docs/storage.md and SyncAll's comment say "a crash keeps a
// prefix of them".)
func TestCrashDuringMultiRecordSyncIsATornTail(t *testing.T) {
	// Records of about 1.5 KiB: a few per 4 KiB block, so a crash image can
	// zero one block and keep the next.
	opts := Options{MaxBatchBytes: 2 << 10}
	big := strings.Repeat("x", 1500)
	fails := 0
	var first error
	for point := 0; point < 200; point++ {
		for seed := uint64(0); seed < 30; seed++ {
			fs := newFaultFS(seed + 1)
			e := mustOpen(t, fs, opts)
			r, err := e.CreateRegion(bootstrapState(regionMeta(1, "", "", 1)))
			check(t, err)
			check(t, e.SyncAll())
			for i := 0; i < 16; i++ { // one round, 32 updates: about 32 records
				r.Put([]byte(fmt.Sprintf("k%d", i)), []byte(big))
				check(t, r.Append([]*raftpb.Entry{ent(uint64(6+i), 5, big)}))
			}
			fs.CrashAfter(point)
			err = e.Sync()
			if err == nil {
				return // the crash point is past the round: every earlier point was tried
			}
			if !errors.Is(err, simfs.ErrCrashed) {
				t.Fatalf("point %d: sync: %v", point, err)
			}
			if _, err := Open(crashFS(t, fs, seed, 50), testDir, opts); err != nil {
				fails++
				if first == nil {
					first = fmt.Errorf("crash point %d, seed %d: %w", point, seed, err)
				}
			}
			if fails > 0 {
				t.Fatalf("a crash image of an unacknowledged multi-record round fails to open: %v", first)
			}
		}
	}
	if fails > 0 {
		t.Fatalf("%d crash images of an unacknowledged multi-record round fail to open; first: %v", fails, first)
	}
}
