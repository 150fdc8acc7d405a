// Package checker judges what a simulation produced: whether the history of
// client operations it recorded is linearizable, and whether the region
// metadata held by PD and the stores obeys the structural invariants (no
// overlap, full coverage, data inside its region, agreement with PD,
// monotonic epochs).
//
// Linearizability is checked with porcupine against a per-key model of the
// key-value store (see CheckLinearizable). Scans are checked as reads of every
// key in their range. Operations whose outcome the client could not know are
// treated as ambiguous: a write may or may not have taken effect, a read is
// ignored.
//
// The package is part of the deterministic kernel: it starts no goroutines
// of its own, reads no clock and draws no randomness; porcupine runs its
// per-partition searches in goroutines with a wall-clock budget, which is
// acceptable because checking happens after a simulation has finished. The
// only file access is Result.WriteVisualization.
package checker
