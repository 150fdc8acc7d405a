// Package core is the deterministic kernel of multiraft: the types and seams
// shared by the store, the placement driver (PD) and the client logic.
//
// Nothing in core or its subpackages starts a goroutine, reads the wall
// clock, draws from a global random source, opens a socket or touches an OS
// file. Time comes from Env.Clock, randomness from Env.Rand, the disk is a
// pebble vfs.FS, and messages leave through Env.Net. The simulator (package
// sim) and the real runtime are the two drivers of the same code.
package core
