package raftstore_test

import "testing"

// A leader told that a follower's store is unreachable (a real transport
// whose connection failed) keeps committing with the rest of its quorum,
// and the follower catches up once it is reachable again.
func TestReportUnreachable(t *testing.T) {
	c := startTwoRegions(t, defaultConfig())
	lead := c.waitLeader(left)
	var follower uint64
	for _, id := range c.ids {
		if id != lead {
			follower = id
			break
		}
	}
	c.isolate(follower, true)
	c.store(lead).ReportUnreachable(follower)
	c.store(lead).ReportUnreachable(12345) // no peer there: nothing happens
	c.ok(left, put("a", "1"))
	c.isolate(follower, false)
	c.store(lead).ReportUnreachable(follower) // a report after healing is harmless too
	c.ok(left, put("a", "2"))
	c.waitFor(200, "follower catches up", func() bool {
		r := c.region(follower, left)
		return r != nil && r.Applied == c.region(lead, left).Applied
	})
	c.mustGet(left, "a", "2", 2)
}
