package pd

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core"
	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/rng"
	"github.com/multiraft/multiraft/sim/simfs"
)

// Crash points inside PD's disk work, as core/storage's TestCrashPoints does
// for a store: PD's first Open (its directory, then its first state file)
// and the state writes after it (a temporary file written and synced,
// renamed over the state file, the directory synced) are stopped at every
// mutating disk operation, and every crash image that differs in the
// unsynced directory entries is reopened, with the unsynced file data all
// lost, all kept and half kept. PD answers a request only after the state
// it depends on is saved, so a reopened PD must hold a state at least as
// new as the last save that returned (never the fresh state of an empty
// disk after that: it would hand out ids again), and no newer than the last
// one tried.

// pdDir is PD's directory, below a parent it creates, as in real mode
// (DATA_DIR/pd).
const pdDir = "/data/pd"

// pdStep is one thing done to PD that changes its durable state.
type pdStep struct {
	what string
	do   func(h *harness) error // a crash makes it return PD's error
}

// pdSteps registers a store, hands out split ids, and publishes the split.
func pdSteps(t *testing.T) []pdStep {
	var left2, right *pb.Region
	reply := func(h *harness) (*pb.Envelope, error) {
		if err := h.pd.Err(); err != nil {
			return nil, err
		}
		return h.net.take(t), nil
	}
	return []pdStep{
		{"a store joins", func(h *harness) error {
			h.send(7, &pb.StoreHello{StoreId: 7, Join: true, Address: "127.0.0.1:7"})
			_, err := reply(h)
			return err
		}},
		{"split ids handed out", func(h *harness) error {
			left := h.pd.Regions()[0]
			h.send(1, &pb.AskSplitRequest{RequestId: 9, Region: left})
			e, err := reply(h)
			if err != nil {
				return err
			}
			resp := e.GetAskSplitResponse()
			if resp.GetError() != "" {
				t.Fatalf("ask split: %s", resp.GetError())
			}
			left2, right = split(left, "c", resp.GetNewRegionId(), resp.GetNewPeerIds())
			return nil
		}},
		{"the split reported", func(h *harness) error {
			h.send(1, &pb.ReportSplit{Left: left2, Right: right})
			return h.pd.Err()
		}},
	}
}

func pdEnv(h *harness, fs vfs.FS) core.Env {
	return core.Env{Clock: h.clock, Net: h.net, FS: fs, Dir: pdDir, Log: slog.New(slog.DiscardHandler)}
}

// pdState is PD's durable state as it would save it.
func pdState(t *testing.T, p *PD) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(p.durableState())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// runPD opens a new PD on fs and does the steps; it returns the states
// saved (the first one by Open), stopping at the first error.
func runPD(t *testing.T, fs *simfs.FaultFS) ([][]byte, error) {
	h := &harness{net: &recorder{}, clock: &fakeClock{t: time.Unix(1000, 0)}}
	p, err := Open(pdEnv(h, fs), Config{ID: pdID, Layout: layout("m")})
	if err != nil {
		return nil, err
	}
	h.pd = p
	states := [][]byte{bytes.Clone(p.saved)}
	for _, s := range pdSteps(t) {
		before := p.stats.StateWrites
		if err := s.do(h); err != nil {
			return nil, err
		}
		if p.stats.StateWrites != before+1 {
			t.Fatalf("%s: %d state writes, want 1", s.what, p.stats.StateWrites-before)
		}
		states = append(states, bytes.Clone(p.saved))
	}
	return states, nil
}

// pdSaves finds the state writes in an op log: a state may be in effect
// once its rename was tried, and must be once the directory sync after it
// returned.
func pdSaves(log []simfs.Op) [][2]int {
	var out [][2]int
	for i, op := range log {
		if op.Kind != "rename" || !strings.HasSuffix(op.To, "/"+stateFile) {
			continue
		}
		m := [2]int{i, len(log)}
		for j := i + 1; j < len(log); j++ {
			if log[j].Kind == "sync dir" {
				m[1] = j
				break
			}
		}
		out = append(out, m)
	}
	return out
}

func TestPDCrashPoints(t *testing.T) {
	probe := simfs.NewFaultFS(vfs.NewMem(), rng.New(1))
	probe.LogOps(true)
	states, err := runPD(t, probe)
	if err != nil {
		t.Fatal(err)
	}
	log := probe.OpLog()
	saves := pdSaves(log)
	if len(saves) != len(states) {
		t.Fatalf("%d state writes in the op log, %d states saved", len(saves), len(states))
	}
	var points, subsetsTried, images int
	for n := 0; n <= len(log); n++ {
		fs := simfs.NewFaultFS(vfs.NewMem(), rng.New(uint64(n)+1))
		where := "after the steps"
		if n < len(log) {
			where = fmt.Sprintf("crash at op %d (%s %s)", n, log[n].Kind, log[n].Name)
			fs.CrashAfter(n)
		}
		_, err := runPD(t, fs)
		switch {
		case n < len(log) && !errors.Is(err, simfs.ErrCrashed):
			t.Fatalf("%s: the steps returned %v, want the crash", where, err)
		case n == len(log) && err != nil:
			t.Fatalf("%s: %v", where, err)
		}
		// States lo..hi are allowed; before the first save, a fresh PD's
		// (states[0] too: Open on an empty disk saves the layout).
		lo, hi := 0, 0
		for i, s := range saves {
			if s[1] < n {
				lo = i
			}
			if s[0] < n {
				hi = i
			}
		}
		entries := fs.UnsyncedEntries()
		if len(entries) > 12 {
			t.Fatalf("%s: %d unsynced directory entries", where, len(entries))
		}
		points++
		for mask := 0; mask < 1<<len(entries); mask++ {
			subsetsTried++
			keep := func(p string) bool {
				i := slices.Index(entries, p)
				return i >= 0 && mask&(1<<i) != 0
			}
			for _, data := range []int{0, 100, 50} {
				img, err := fs.CrashChoosing(rng.New(uint64(n)), data, keep)
				if err != nil {
					t.Fatalf("%s: crash image: %v", where, err)
				}
				what := fmt.Sprintf("%s, entries kept %v of %v, data kept %d%%", where, keptEntries(entries, mask), entries, data)
				checkPDImage(t, what, img, states[lo:hi+1])
				images++
			}
		}
	}
	t.Logf("%d disk ops, %d crash points, %d entry subsets, %d images", len(log), points, subsetsTried, images)
}

func keptEntries(entries []string, mask int) []string {
	var out []string
	for i, e := range entries {
		if mask&(1<<i) != 0 {
			out = append(out, e)
		}
	}
	return out
}

// checkPDImage reopens PD on a crash image: it must open, hold one of the
// allowed states, and keep a state it saves after the reopen.
func checkPDImage(t *testing.T, what string, img *simfs.FaultFS, allowed [][]byte) {
	t.Helper()
	h := &harness{net: &recorder{}, clock: &fakeClock{t: time.Unix(2000, 0)}}
	p, err := Open(pdEnv(h, img), Config{ID: pdID, Layout: layout("m")})
	if err != nil {
		t.Fatalf("%s: reopen: %v", what, err)
	}
	got := pdState(t, p)
	i := slices.IndexFunc(allowed, func(s []byte) bool { return bytes.Equal(s, got) })
	if i < 0 {
		t.Fatalf("%s: recovered a state the steps do not allow (recovered: %v; id high water %d; allowed: %d states from id high water %d)",
			what, p.Recovered(), p.idHigh, len(allowed), idHighOf(t, allowed[0]))
	}
	// The reopened PD works on: a change it saves survives the next crash.
	h.pd = p
	h.send(8, &pb.StoreHello{StoreId: 8, Join: true, Address: "127.0.0.1:8"})
	if err := p.Err(); err != nil {
		t.Fatalf("%s: a write after the reopen: %v", what, err)
	}
	want := pdState(t, p)
	again, err := img.Crash(rng.New(1), 0)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := Open(pdEnv(h, again), Config{ID: pdID, Layout: layout("m")})
	if err != nil {
		t.Fatalf("%s: reopen after a write on the reopened PD: %v", what, err)
	}
	if !bytes.Equal(pdState(t, p2), want) {
		t.Fatalf("%s: a state saved by the reopened PD was lost", what)
	}
}

func idHighOf(t *testing.T, b []byte) uint64 {
	st := &pb.PDState{}
	if err := proto.Unmarshal(b, st); err != nil {
		t.Fatal(err)
	}
	return st.GetIdHighWater()
}
