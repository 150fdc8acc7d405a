// Package e2e holds the end-to-end tests of a real multiraft cluster: the
// multiraft binary built once (TestMain), PD and stores as separate
// processes on 127.0.0.1, killed with SIGKILL and restarted under load, and
// the whole client history checked for linearizability with the same
// porcupine checker the simulator uses.
package e2e
