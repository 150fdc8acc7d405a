package sim

import "github.com/multiraft/multiraft/core/rng"

// streams are the independent random sources of a run.
type streams struct {
	net, disk, work, fault, raft, node *rng.Rand
	burst                              *rng.Rand // the workload's bursts (Workload.Burst)
	batch                              *rng.Rand // where raft batches are cut (Config.BatchRaft)
	clock                              *rng.Rand // the clients' clock offsets (Config.ClientClockSkew)
}

func newStreams(seed uint64) streams {
	return streams{
		net:   rng.Stream(seed, "network"),
		disk:  rng.Stream(seed, "disk"),
		work:  rng.Stream(seed, "workload"),
		fault: rng.Stream(seed, "faults"),
		raft:  rng.Stream(seed, "raft"),
		node:  rng.Stream(seed, "nodes"),
		burst: rng.Stream(seed, "bursts"),
		batch: rng.Stream(seed, "batches"),
		clock: rng.Stream(seed, "client-clocks"),
	}
}
