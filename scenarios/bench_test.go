package scenarios

import (
	"testing"

	"github.com/multiraft/multiraft/sim"
)

// BenchmarkScenario measures the simulator: simulated seconds per wall
// second and client operations checked per second, per scenario.
//
//	go test ./scenarios/ -run '^$' -bench Scenario -benchtime 5x
func BenchmarkScenario(b *testing.B) {
	for _, s := range All() {
		b.Run(s.Name, func(b *testing.B) {
			var simMs, ops, checked float64
			for i := 0; i < b.N; i++ {
				rep := sim.Run(s.Config, uint64(i+1), nil)
				if !rep.OK {
					b.Fatalf("seed %d: %s", i+1, rep.Violation)
				}
				simMs += rep.SimMs
				ops += float64(rep.OpsTotal)
				checked += float64(rep.OpsChecked)
			}
			wall := b.Elapsed().Seconds()
			b.ReportMetric(simMs/1000/wall, "sim-s/s")
			b.ReportMetric(ops/wall, "client-ops/s")
			b.ReportMetric(checked/wall, "checked-ops/s")
		})
	}
}
