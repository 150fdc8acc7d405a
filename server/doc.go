// Package server is the real-mode runtime of multiraft: it drives the same
// core objects the simulator drives (core/raftstore.Store, core/pd.PD) with
// goroutines, gRPC over TCP, the wall clock and the OS disk.
//
// One goroutine owns each core object and runs its loop (Store.run,
// PD.run): it waits for inbound envelopes or the ticker, calls Receive for
// everything that arrived, Tick when the ticker fired, then Flush while the
// store NeedsFlush. Everything that arrived while the previous Flush was
// syncing is handled before the next one, so one fsync covers the writes of
// every region and every client that came in meanwhile (group commit).
// gRPC handlers never touch a core object: they hand envelopes to the
// owning loop and wait for the reply the core sends back through its
// Transport (core.Env.Net), which this package implements: to PD as unary
// calls, to other stores as batches on one long-lived stream per store
// (snapshot chunks on a stream of their own), to clients on their
// BatchCommands stream or unary call.
//
// Every request carries the cluster id (rpcpb.Header); a process of
// another cluster is refused. See docs/runtime.md, docs/wire.md and
// docs/operations.md.
package server
