package main

import "io"

func runBench(args []string, stdout, stderr io.Writer) int {
	return exitCode("bench", benchMain(args, stdout, stderr), stderr)
}
