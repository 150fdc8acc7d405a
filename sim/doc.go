// Package sim is the deterministic simulator: a virtual clock and an event
// queue, a world of stores, PD and clients wired through the simulated
// network (netsim), crashable in-memory disks, a fault plan, end-of-run
// checks, and a report.
//
// A run is a pure function of (Config, seed). Everything random is drawn
// from separate streams split from the seed (network, disk, workload,
// faults, raft, nodes), events at the same virtual time run in the order
// they were scheduled, and etcd raft's crypto/rand.Reader is replaced by a
// seeded stream for the length of a run — so only one run may be in
// progress per process at a time (Run holds a process-wide lock). Every
// event is fed to a trace hash; the same seed gives the same hash.
//
// The files follow the parts of a run: kernel.go (clock, event queue,
// trace hash), streams.go (random sources), world.go (the World and how
// its nodes are wired), stores.go, pd.go, clients.go and probe.go (the
// nodes), deposed.go (the probe's writes and reads around deposed leaders,
// checked with the clients' history), faults.go (the fault plan's API), actions.go (the plan's actions
// by index, and the edits that skip or move them), run.go (the phases of a
// run), metrics.go (what a run measures), check.go (end-of-run checks),
// report.go (the Report), timeline.go and timeline_html.go (recording a run
// and drawing a picture of it) and shrink.go (reducing a failing run).
package sim
