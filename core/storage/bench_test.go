package storage

import (
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core/pb"
)

// BenchmarkSyncRound measures one ready round of the engine: 16 regions
// each appending one 128-byte entry, a hard state and an apply index (logs
// compacted to 100 entries), then one synced WAL record (the group commit), with
// a checkpoint every 4 MiB of WAL. "mem" is
// the CPU cost on an in-memory disk; "disk" adds a real fsync per round.
//
//	go test ./core/storage/ -run '^$' -bench SyncRound
func BenchmarkSyncRound(b *testing.B) {
	b.Run("mem", func(b *testing.B) { benchSyncRound(b, vfs.NewMem(), "/bench") })
	b.Run("disk", func(b *testing.B) { benchSyncRound(b, vfs.Default, b.TempDir()) })
}

func benchSyncRound(b *testing.B, fs vfs.FS, dir string) {
	e, err := Open(fs, dir, Options{CheckpointBytes: 4 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	var regions []*Region
	for id := uint64(1); id <= 16; id++ {
		r, err := e.CreateRegion(&pb.RegionCheckpoint{
			Region:         &pb.Region{Id: id, StartKey: []byte(fmt.Sprintf("%02d", id)), Epoch: &pb.Epoch{ConfVer: 1, Version: 1}},
			AppliedIndex:   5,
			TruncatedIndex: 5,
			TruncatedTerm:  5,
		})
		if err != nil {
			b.Fatal(err)
		}
		regions = append(regions, r)
	}
	payload := make([]byte, 128)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		idx := uint64(6 + i)
		for _, r := range regions {
			if err := r.Append([]*raftpb.Entry{{Index: proto.Uint64(idx), Term: proto.Uint64(6), Data: payload}}); err != nil {
				b.Fatal(err)
			}
			r.SetHardState(&raftpb.HardState{Term: proto.Uint64(6), Commit: proto.Uint64(idx)})
			r.SetApplied(idx)
			if idx > 105 {
				if err := r.Compact(idx - 100); err != nil { // keep the log short, as stores do
					b.Fatal(err)
				}
			}
		}
		if err := e.Sync(); err != nil {
			b.Fatal(err)
		}
		if err := e.MaybeCheckpoint(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(regions))/b.Elapsed().Seconds(), "entries/s")
}
