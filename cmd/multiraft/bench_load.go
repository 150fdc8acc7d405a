package main

import (
	"io"
)

func benchMain(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench", "", "Loads a cluster.", stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	return nil
}
