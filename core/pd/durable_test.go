package pd

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/multiraft/multiraft/core"
	"github.com/multiraft/multiraft/core/pb"
)

// openOn opens a PD on fs, recovering what is there.
func openOn(t *testing.T, fs vfs.FS, h *harness) *PD {
	t.Helper()
	env := core.Env{Clock: h.clock, Net: h.net, FS: fs, Dir: "/pd", Log: slog.New(slog.DiscardHandler)}
	p, err := Open(env, Config{ID: pdID, Layout: layout("m")})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	h.pd = p
	return p
}

func TestStateSurvivesRestart(t *testing.T) {
	fs := vfs.NewMem()
	h := &harness{net: &recorder{}, clock: &fakeClock{t: time.Unix(1000, 0)}}
	p := openOn(t, fs, h)
	if p.Recovered() {
		t.Fatal("a PD on an empty disk says it recovered")
	}
	h.send(1, &pb.StoreHello{StoreId: 1, Address: "127.0.0.1:1"})
	h.net.take(t)
	h.send(7, &pb.StoreHello{StoreId: 7, Join: true, Address: "127.0.0.1:7"})
	h.net.take(t)
	left := p.Regions()[0]
	resp := h.askSplit(t, left)
	if resp.GetError() != "" {
		t.Fatalf("ask split: %s", resp.GetError())
	}
	l, r := split(left, "c", resp.GetNewRegionId(), resp.GetNewPeerIds())
	h.send(1, &pb.ReportSplit{Left: l, Right: r})
	h.heartbeat(l)
	before := describe(p.Regions())
	if len(p.Regions()) != 3 {
		t.Fatalf("split not published: %s", before)
	}
	// A manual move: an operator that must survive the restart.
	h.send(1, &pb.StoreHeartbeat{StoreId: 1})
	h.send(7, &pb.StoreHeartbeat{StoreId: 7})
	h.send(2, &pb.StoreHeartbeat{StoreId: 2})
	h.send(3, &pb.StoreHeartbeat{StoreId: 3})
	opID, err := p.MoveRegion(r.GetId(), 3, 7)
	if err != nil {
		t.Fatalf("move: %v", err)
	}
	p.Tick() // a direct order is saved by the next Tick or Receive
	maxID := resp.GetNewRegionId()
	for _, id := range resp.GetNewPeerIds() {
		maxID = max(maxID, id)
	}

	// Restart: a new PD on the same disk.
	h2 := &harness{net: &recorder{}, clock: &fakeClock{t: time.Unix(2000, 0)}}
	p2 := openOn(t, fs, h2)
	if !p2.Recovered() {
		t.Fatal("restarted PD did not recover its state")
	}
	if after := describe(p2.Regions()); after != before {
		t.Fatalf("routing view after restart:\n%s\nbefore:\n%s", after, before)
	}
	mustTile(t, p2)
	st := p2.Stores()
	if len(st) != 4 || st[0].Address != "127.0.0.1:1" || st[3].ID != 7 || !st[3].Joined {
		t.Fatalf("stores after restart: %+v", st)
	}
	ops := p2.Operators()
	if len(ops) == 0 || ops[0].ID != opID || ops[0].Region != r.GetId() || ops[0].To != 7 || ops[0].Origin != OriginManual {
		t.Fatalf("operators after restart: %+v", ops)
	}
	// Ids: never handed out twice.
	resp2 := h2.askSplit(t, p2.Regions()[0])
	if resp2.GetError() != "" {
		t.Fatalf("ask split after restart: %s", resp2.GetError())
	}
	if resp2.GetNewRegionId() <= maxID {
		t.Fatalf("restarted PD handed out region id %d, at or below %d handed out before", resp2.GetNewRegionId(), maxID)
	}
	// Reports the old PD allowed are still accepted (bounds kept): the
	// right half at its version.
	h2.heartbeat(r)
	if p2.Stats().RejectedHeartbeats != 0 {
		t.Fatalf("restarted PD rejected a legitimate heartbeat: %+v", p2.Stats())
	}
}

func TestCorruptStateRefused(t *testing.T) {
	fs := vfs.NewMem()
	h := &harness{net: &recorder{}, clock: &fakeClock{t: time.Unix(1000, 0)}}
	openOn(t, fs, h)
	if _, err := Open(core.Env{Clock: h.clock, Net: h.net, FS: fs, Dir: "/pd"}, Config{ID: pdID + 1, Layout: layout("m")}); err == nil {
		t.Fatal("Open with another PD id succeeded")
	}
	f, err := fs.OpenReadWrite("/pd/pd-state", vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xff}, 12); err != nil {
		t.Fatal(err)
	}
	f.Close()
	env := core.Env{Clock: h.clock, Net: h.net, FS: fs, Dir: "/pd"}
	if _, err := Open(env, Config{ID: pdID, Layout: layout("m")}); !errors.Is(err, ErrCorruptState) {
		t.Fatalf("Open of a corrupt state = %v, want ErrCorruptState", err)
	}
}

// A store id that has bootstrapped (PD heard its store heartbeat, which a
// store sends only once its bootstrap is on disk, or a hello saying its disk
// holds its identity) and comes back on an empty disk is refused, for good
// (PD keeps the fact across its own restarts): bootstrapping it again would
// re-create its replicas from the initial layout with their old peer ids
// and an empty log. A store that said hello but never heartbeated may have
// crashed before its bootstrap was durable: it is bootstrapped again.
func TestBootstrappedStoreOnAnEmptyDiskIsRefused(t *testing.T) {
	fs := vfs.NewMem()
	h := &harness{net: &recorder{}, clock: &fakeClock{t: time.Unix(1000, 0)}}
	p := openOn(t, fs, h)
	hello := func(h *harness, id uint64, join, bootstrapped bool) *pb.Bootstrap {
		t.Helper()
		h.send(id, &pb.StoreHello{StoreId: id, Join: join, Bootstrapped: bootstrapped})
		return h.net.take(t).GetBootstrap()
	}
	if b := hello(h, 1, false, false); b.GetError() != "" || len(b.GetRegions()) == 0 {
		t.Fatalf("first hello of store 1: %v", b)
	}
	if b := hello(h, 1, false, false); b.GetError() != "" || len(b.GetRegions()) == 0 {
		t.Fatalf("store 1 again before its bootstrap was durable: %v", b)
	}
	h.send(1, &pb.StoreHeartbeat{StoreId: 1})
	if !p.Stores()[0].Bootstrapped {
		t.Fatalf("store 1 heartbeated but is not recorded as bootstrapped: %+v", p.Stores()[0])
	}
	if b := hello(h, 7, true, false); b.GetError() != "" {
		t.Fatalf("join of store 7: %v", b)
	}
	h.send(7, &pb.StoreHeartbeat{StoreId: 7})
	if b := hello(h, 2, false, true); b.GetError() != "" || len(b.GetRegions()) != 0 {
		t.Fatalf("store 2 with its data (PD never heard it) got %v, want no regions", b)
	}
	check := func(h *harness, p *PD, want uint64) {
		t.Helper()
		for _, c := range []struct {
			id   uint64
			join bool
		}{{1, false}, {2, false}, {7, true}} {
			b := hello(h, c.id, c.join, false)
			if b.GetError() == "" || len(b.GetRegions()) != 0 || !strings.Contains(b.GetError(), "bootstrapped before") {
				t.Fatalf("store %d on an empty disk got %v, want a refusal", c.id, b)
			}
			if b := hello(h, c.id, c.join, true); b.GetError() != "" || len(b.GetRegions()) != 0 {
				t.Fatalf("store %d with its data got %v, want no error and no regions", c.id, b)
			}
		}
		if n := p.Stats().EmptyDiskStores; n != want {
			t.Fatalf("EmptyDiskStores %d, want %d", n, want)
		}
		if b := hello(h, 3, false, false); b.GetError() != "" || len(b.GetRegions()) == 0 {
			t.Fatalf("store 3, never bootstrapped: %v", b)
		}
	}
	check(h, p, 3)
	h2 := &harness{net: &recorder{}, clock: &fakeClock{t: time.Unix(2000, 0)}}
	p2 := openOn(t, fs, h2)
	check(h2, p2, 3)
}
