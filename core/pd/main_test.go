package pd

import (
	"os"
	"testing"
)

// TestMain runs the package's tests with every skipped state write
// verified: a change to PD's durable state that does not touch() it panics.
func TestMain(m *testing.M) {
	verifySavesSkipped = true
	os.Exit(m.Run())
}
