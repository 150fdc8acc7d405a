package scenarios

import (
	"testing"
	"time"

	"github.com/multiraft/multiraft/core/session"
	"github.com/multiraft/multiraft/sim"
)

// Review (sessions): scenarios with lost and duplicated messages, crashes
// and moves, with a session TTL short enough that expiry happens during a
// 60 s run (the default, 10 minutes, never triggers in a simulation), and
// shorter than the client's retry window (OpTimeout, 10 s). A write whose
// result was stored, whose session then went idle for 2 TTL (expired, then
// its marker dropped), used to be applied again by a retry (move-partition
// seed 3: a delete that removed a value and then answered "was absent").
// Now the retry carries the write's start time and a region that does not
// know its session refuses it (docs/architecture.md, client sessions): every
// run must be linearizable.
func TestReviewSessionsUnderShortTTL(t *testing.T) {
	for _, name := range []string{"static-partition", "static-crash", "split-partition", "move-partition"} {
		s, err := Get(name)
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.Config
		cfg.Store.SessionLimits = session.Limits{TTL: 2 * time.Second}
		for seed := uint64(1); seed <= 1; seed++ { // session-churn runs the long version
			rep := sim.Run(cfg, seed, nil)
			if !rep.OK {
				v := rep.Violation
				if len(v) > 4000 {
					v = v[:4000]
				}
				t.Errorf("%s seed %d: %s", name, seed, v)
				continue
			}
			t.Logf("%s seed %d: ok, write success %.4f (%d of %d, %d ambiguous)", name, seed,
				rep.WriteSuccessRatio, rep.WritesAcked, rep.WritesIssued, rep.OpsAmbiguous)
		}
	}
}
