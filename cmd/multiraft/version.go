package main

import (
	"fmt"
	"io"
)

// version names the build; release builds set it with
// -ldflags "-X main.version=...".
var version = "dev"

func runVersion(stdout io.Writer) int {
	fmt.Fprintf(stdout, "multiraft %s\n", version)
	return 0
}
