// Command multiraft is the one binary of the project: `multiraft sim` runs
// simulation scenarios by seed; pd, store and cluster run a real cluster
// (server/); kv talks to it; bench measures it (and etcd) under load.
package main

import (
	"fmt"
	"os"
	"runtime"
)

func usage() {
	fmt.Fprintf(os.Stderr, `usage: multiraft <command> [flags]

commands:
  sim      run simulation scenarios across seeds and check them
  pd       run the placement driver
  store    run a store
  cluster  run PD and stores on 127.0.0.1 as child processes (a local cluster)
  kv       get, put, delete, scan, cas; regions, stores, split, move, transfer-leader
  bench    load a cluster (or etcd) and report throughput and latency
  version  print the build's version

multiraft COMMAND --help describes a command's flags.
`)
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	var code int
	switch os.Args[1] {
	case "sim":
		// sim has no heap profile to serve, and the sampling costs: each
		// sample (one per 512 KiB allocated by default) walks the stack,
		// about 2% of a scenario's instructions.
		runtime.MemProfileRate = 0
		code = runSim(os.Args[2:], os.Stdout, os.Stderr)
	case "pd":
		code = runPD(os.Args[2:], os.Stdout, os.Stderr)
	case "store":
		code = runStore(os.Args[2:], os.Stdout, os.Stderr)
	case "cluster":
		code = runCluster(os.Args[2:], os.Stdout, os.Stderr)
	case "kv":
		code = runKV(os.Args[2:], os.Stdout, os.Stderr)
	case "bench":
		code = runBench(os.Args[2:], os.Stdout, os.Stderr)
	case "version":
		code = runVersion(os.Stdout)
	case "-h", "--help", "help":
		usage()
	default:
		fmt.Fprintf(os.Stderr, "multiraft: unknown command %q\n", os.Args[1])
		usage()
		code = 2
	}
	os.Exit(code)
}
