package scenarios

import (
	"os"
	"runtime/debug"
	"testing"

	"github.com/multiraft/multiraft/sim"
)

// TestMain runs the scenario tests with the garbage collector of
// `multiraft sim` (sim.GCPercent, sim.GCMemoryLimit).
func TestMain(m *testing.M) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(sim.GCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(sim.GCMemoryLimit)
	}
	os.Exit(m.Run())
}
