package scenarios

import (
	"testing"

	"github.com/multiraft/multiraft/sim"
)

// session-churn seeds that applied a put twice before refusals were final
// and the client resent only on never_applied. Seed 9 (at fc1de52): a put's
// only attempt reached region 1 twice (the network duplicated it); the
// first copy met its session's marker (SessionExpired), and the client sent
// the put again at once in a new session; the second copy, one entry later,
// found the marker dropped by the sweep that entry's clock ran (the horizon
// covered the writes the session applied, not the one it refused) and
// applied, as did the resend: put("g001", "c6-961-...") answered v1 and
// every read then saw it at v2. The kernel's timing has changed since, and
// each change moves the failure to another seed: 56 at 433c540
// (put("b001", "c5-651-...") answered v19, reads saw v20), 68 at 61926ad
// (put("p001", "c1-587-...") answered v2, reads saw v3). Now the second copy
// is refused as well (the refusal is recorded in the session table) and the
// client resends only on the region's word that no copy applied. The stable
// guards are in small and do not depend on the simulator's timing: core/client
// TestRefusedCopyStaysRefusedAfterItsMarkerIsDropped and
// TestOnlyAttemptRefusedByAnEvictedSessionIsNotSentAgain, core/session
// TestExactlyOnceAndBoundsWhateverTheClocks, core/raftstore
// TestRefusedWriteStaysRefusedAcrossSplitAndRestart.
func TestSessionChurnAppliesEachWriteOnce(t *testing.T) {
	s, err := Get("session-churn")
	if err != nil {
		t.Fatal(err)
	}
	for _, seed := range []uint64{9, 56, 68} {
		if rep := sim.Run(s.Config, seed, nil); !rep.OK {
			v := rep.Violation
			if len(v) > 3000 {
				v = v[:3000]
			}
			t.Errorf("session-churn seed %d: %s", seed, v)
		}
	}
}
