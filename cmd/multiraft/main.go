// Command multiraft is the one binary of the project: `multiraft sim` runs
// simulation scenarios by seed. (The real PD and store processes come with
// the runtime.)
package main

import (
	"fmt"
	"os"
)

func usage() {
	fmt.Fprintf(os.Stderr, `usage: multiraft <command> [flags]

commands:
  sim     run simulation scenarios across seeds and check them
          (multiraft sim -h for flags)
  version print the build's version
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
		code = runSim(os.Args[2:], os.Stdout, os.Stderr)
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
