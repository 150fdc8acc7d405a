package scenarios

import (
	"os"
	"runtime/debug"
	"testing"
)

// TestMain runs the scenario tests with the garbage collector of
// `multiraft sim` (a quarter as often as Go's default): the runs allocate
// fast and hold little.
func TestMain(m *testing.M) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	os.Exit(m.Run())
}
