package pd

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"

	"github.com/multiraft/multiraft/core"
	"github.com/multiraft/multiraft/core/pb"
)

const pdID = 100

// tb is what the helpers need from *testing.T and *rapid.T.
type tb interface {
	Helper()
	Fatalf(format string, args ...any)
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

// recorder keeps what PD sends: sent since the last take, all ever.
// recorder keeps what PD sends; answers to store heartbeats (the store
// list) are kept apart, since most tests look at other replies.
type recorder struct{ sent, all, storeLists []*pb.Envelope }

func (r *recorder) Send(e *pb.Envelope) {
	r.all = append(r.all, e)
	if e.GetStoreHeartbeatResponse() != nil {
		r.storeLists = append(r.storeLists, e)
		return
	}
	r.sent = append(r.sent, e)
}

// take returns the one envelope sent since the last take, and forgets it.
func (r *recorder) take(t tb) *pb.Envelope {
	t.Helper()
	if len(r.sent) != 1 {
		t.Fatalf("want exactly one reply, got %d: %v", len(r.sent), r.sent)
	}
	e := r.sent[0]
	r.sent = nil
	return e
}

type harness struct {
	pd    *PD
	net   *recorder
	clock *fakeClock
}

func newHarness(t tb, l Layout) *harness {
	t.Helper()
	return newHarnessCfg(t, Config{ID: pdID, Layout: l})
}

func newHarnessCfg(t tb, cfg Config) *harness {
	t.Helper()
	h := &harness{net: &recorder{}, clock: &fakeClock{t: time.Unix(1000, 0)}}
	env := core.Env{Clock: h.clock, Net: h.net, Log: slog.New(slog.DiscardHandler)}
	p, err := New(env, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.pd = p
	return h
}

func (h *harness) send(from uint64, body pb.Body) {
	m := pb.NewEnvelope(from, pdID, body)
	h.pd.Receive(m)
}

func (h *harness) heartbeat(r *pb.Region) {
	var leader *pb.Peer
	if len(r.GetPeers()) > 0 {
		leader = r.GetPeers()[0]
	}
	h.send(leader.GetStoreId(), &pb.RegionHeartbeat{Region: r, Leader: leader, ApproximateSize: 10})
}

func (h *harness) getRegion(t tb, key string, reqID uint64) *pb.GetRegionResponse {
	t.Helper()
	h.send(7, &pb.GetRegionRequest{RequestId: reqID, Key: []byte(key)})
	r := h.net.take(t).GetGetRegionResponse()
	if r == nil || r.GetRequestId() != reqID {
		t.Fatalf("bad GetRegion reply %v", r)
	}
	return r
}

// askSplit asks for split ids as the region's leader would: from the store
// PD believes leads it (else its first peer's).
func (h *harness) askSplit(t tb, r *pb.Region) *pb.AskSplitResponse {
	t.Helper()
	from := r.GetPeers()[0].GetStoreId()
	if k := h.pd.view.known(r.GetId()); k != nil && k.leader != nil {
		from = k.leader.GetStoreId()
	}
	h.send(from, &pb.AskSplitRequest{RequestId: 9, Region: r})
	resp := h.net.take(t).GetAskSplitResponse()
	if resp == nil || resp.GetRequestId() != 9 {
		t.Fatalf("bad AskSplit reply %v", resp)
	}
	return resp
}

// tiles returns an error unless regions, in order, cover the keyspace exactly.
func tiles(regions []*pb.Region) error {
	if len(regions) == 0 {
		return errors.New("no regions")
	}
	var prevEnd []byte
	for i, r := range regions {
		if !bytes.Equal(r.GetStartKey(), prevEnd) {
			return fmt.Errorf("region %d starts at %q, previous ends at %q", i, r.GetStartKey(), prevEnd)
		}
		if i > 0 && len(prevEnd) == 0 {
			return fmt.Errorf("region %d follows a region ending at +inf", i)
		}
		if end := r.GetEndKey(); len(end) != 0 && bytes.Compare(r.GetStartKey(), end) >= 0 {
			return fmt.Errorf("region %d %s is empty", i, r.Describe())
		}
		prevEnd = r.GetEndKey()
	}
	if len(prevEnd) != 0 {
		return fmt.Errorf("last region ends at %q, not +inf", prevEnd)
	}
	return nil
}

func mustTile(t tb, p *PD) {
	t.Helper()
	if err := tiles(p.Regions()); err != nil {
		t.Fatalf("routing view does not tile: %v\nview: %v", err, describe(p.Regions()))
	}
}

func describe(rs []*pb.Region) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = r.Describe()
	}
	return strings.Join(s, ", ")
}

// split returns the two halves of r cut at key, as the store would make them.
func split(r *pb.Region, key string, newID uint64, newPeers []uint64) (left, right *pb.Region) {
	left = proto.Clone(r).(*pb.Region)
	left.EndKey = []byte(key)
	left.Epoch.Version++
	right = proto.Clone(r).(*pb.Region)
	right.Id = newID
	right.StartKey = []byte(key)
	right.Epoch.Version++
	for i, p := range right.Peers {
		p.Id = newPeers[i]
	}
	return left, right
}

func layout(keys ...string) Layout {
	bs := make([][]byte, len(keys))
	for i, k := range keys {
		bs[i] = []byte(k)
	}
	return LayoutFromSplitKeys(bs, 3, []uint64{1, 2, 3})
}

func rs(start, end string) RangeSpec { return RangeSpec{Start: []byte(start), End: []byte(end)} }

func TestLayoutValidation(t *testing.T) {
	three := []uint64{1, 2, 3}
	cases := []struct {
		name string
		l    Layout
		want string
	}{
		{"overlap", Layout{Ranges: []RangeSpec{rs("", "a"), rs("k", ""), rs("a", "m")}, Replicas: 3, Stores: three},
			`pd: initial layout: ranges ["a","m") and ["k",+inf) overlap`},
		{"overlap unbounded", Layout{Ranges: []RangeSpec{rs("", ""), rs("a", "")}, Replicas: 1, Stores: three},
			`pd: initial layout: ranges ["",+inf) and ["a",+inf) overlap`},
		{"duplicate range", Layout{Ranges: []RangeSpec{rs("", "a"), rs("a", ""), rs("", "a")}, Replicas: 1, Stores: three},
			`pd: initial layout: ranges ["","a") and ["","a") overlap`},
		{"gap", Layout{Ranges: []RangeSpec{rs("c", ""), rs("", "a")}, Replicas: 3, Stores: three},
			`pd: initial layout: gap between ["","a") and ["c",+inf): keys ["a","c") belong to no range`},
		{"missing empty start", Layout{Ranges: []RangeSpec{rs("b", "")}, Replicas: 1, Stores: three},
			`pd: initial layout: first range ["b",+inf) does not start at "": keys ["","b") belong to no range`},
		{"finite last end", Layout{Ranges: []RangeSpec{rs("", "m"), rs("m", "z")}, Replicas: 1, Stores: three},
			`pd: initial layout: last range ["m","z") ends at "z", not +inf: keys ["z",+inf) belong to no range`},
		{"empty range", Layout{Ranges: []RangeSpec{rs("", "m"), rs("m", "m"), rs("m", "")}, Replicas: 1, Stores: three},
			`pd: initial layout: range ["m","m") is empty (start >= end)`},
		{"reversed range", Layout{Ranges: []RangeSpec{rs("", "z"), rs("z", "a")}, Replicas: 1, Stores: three},
			`pd: initial layout: range ["z","a") is empty (start >= end)`},
		{"no ranges", Layout{Replicas: 1, Stores: three},
			`pd: initial layout: no ranges: keys ["",+inf) belong to no range`},
		{"replicas > stores", Layout{Ranges: []RangeSpec{rs("", "")}, Replicas: 4, Stores: three},
			`pd: initial layout: 4 replicas per region but only 3 stores`},
		{"zero replicas", Layout{Ranges: []RangeSpec{rs("", "")}, Replicas: 0, Stores: three},
			`pd: initial layout: replicas per region must be positive, got 0`},
		{"duplicate store", Layout{Ranges: []RangeSpec{rs("", "")}, Replicas: 1, Stores: []uint64{2, 1, 2}},
			`pd: initial layout: store id 2 is listed twice`},
		{"zero store", Layout{Ranges: []RangeSpec{rs("", "")}, Replicas: 1, Stores: []uint64{1, 0}},
			`pd: initial layout: store id 0 is not allowed`},
		{"no stores", Layout{Ranges: []RangeSpec{rs("", "")}, Replicas: 1},
			`pd: initial layout: no stores`},
		{"duplicate split key", layout("a", "a"),
			`pd: initial layout: range ["a","a") is empty (start >= end)`},
		{"unsorted split keys", layout("m", "c"),
			`pd: initial layout: range ["m","c") is empty (start >= end)`},
		{"empty split key", layout(""),
			`pd: initial layout: ranges ["",+inf) and ["",+inf) overlap`}, // an empty end means +inf
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := core.Env{Clock: &fakeClock{}, Net: &recorder{}, Log: slog.New(slog.DiscardHandler)}
			_, err := New(env, Config{ID: pdID, Layout: c.l})
			if err == nil {
				t.Fatalf("New accepted %+v", c.l)
			}
			if !strings.HasPrefix(err.Error(), c.want) {
				t.Fatalf("error\n got: %s\nwant: %s", err, c.want)
			}
			if !errors.Is(err, ErrInvalidLayout) {
				t.Fatalf("error %v does not wrap ErrInvalidLayout", err)
			}
		})
	}
}

func TestNewConfigErrors(t *testing.T) {
	env := core.Env{Clock: &fakeClock{}, Net: &recorder{}}
	if _, err := New(env, Config{ID: 0, Layout: layout()}); err == nil {
		t.Fatal("PD id 0 accepted")
	}
	if _, err := New(env, Config{ID: 2, Layout: layout()}); err == nil || !strings.Contains(err.Error(), "store id") {
		t.Fatalf("PD id equal to a store id: %v", err)
	}
	if _, err := New(env, Config{ID: pdID, Layout: layout(), HeartbeatInterval: -time.Second}); err == nil {
		t.Fatal("negative heartbeat interval accepted")
	}
	if _, err := New(core.Env{Net: &recorder{}}, Config{ID: pdID, Layout: layout()}); err == nil {
		t.Fatal("env without clock accepted")
	}
	p, err := New(env, Config{ID: pdID, Layout: layout()}) // nil Log is fine
	if err != nil {
		t.Fatal(err)
	}
	if p.HeartbeatInterval() != DefaultHeartbeatInterval {
		t.Fatalf("interval %v", p.HeartbeatInterval())
	}
	p, err = New(env, Config{ID: pdID, Layout: layout(), HeartbeatInterval: time.Second})
	if err != nil || p.HeartbeatInterval() != time.Second {
		t.Fatalf("interval %v, %v", p.HeartbeatInterval(), err)
	}
}

func TestUnsortedLayoutAccepted(t *testing.T) {
	l := Layout{Ranges: []RangeSpec{rs("p", ""), rs("", "g"), rs("g", "p")}, Replicas: 1, Stores: []uint64{3, 1, 2}}
	orig := slices.Clone(l.Ranges)
	h := newHarness(t, l)
	mustTile(t, h.pd)
	if got := len(h.pd.Regions()); got != 3 {
		t.Fatalf("%d regions", got)
	}
	for i := range orig {
		if !bytes.Equal(orig[i].Start, l.Ranges[i].Start) || l.Stores[0] != 3 {
			t.Fatal("New reordered the caller's layout")
		}
	}
}

func TestAllocationAndPlacement(t *testing.T) {
	l := LayoutFromSplitKeys([][]byte{[]byte("g"), []byte("p")}, 2, []uint64{30, 10, 20})
	h := newHarness(t, l)
	voter := pb.PeerRole_VOTER
	peer := func(id, store uint64) *pb.Peer { return &pb.Peer{Id: id, StoreId: store, Role: voter} }
	epoch := &pb.Epoch{ConfVer: 1, Version: 1}
	want := []*pb.Region{
		{Id: 1, StartKey: []byte{}, EndKey: []byte("g"), Epoch: epoch, Peers: []*pb.Peer{peer(2, 10), peer(3, 20)}},
		{Id: 4, StartKey: []byte("g"), EndKey: []byte("p"), Epoch: epoch, Peers: []*pb.Peer{peer(5, 20), peer(6, 30)}},
		{Id: 7, StartKey: []byte("p"), EndKey: []byte{}, Epoch: epoch, Peers: []*pb.Peer{peer(8, 10), peer(9, 30)}},
	}
	got := h.pd.Regions()
	if len(got) != len(want) {
		t.Fatalf("got %d regions", len(got))
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Errorf("region %d:\n got %v\nwant %v", i, got[i], want[i])
		}
	}
	// Deterministic: a second PD from the same layout allocates the same.
	again := newHarness(t, l).pd.Regions()
	for i := range got {
		if !proto.Equal(got[i], again[i]) {
			t.Fatalf("allocation differs between runs: %v vs %v", got[i], again[i])
		}
	}
	// The next id handed out follows the initial ones.
	if resp := h.askSplit(t, got[0]); resp.GetNewRegionId() != 10 || !slices.Equal(resp.GetNewPeerIds(), []uint64{11, 12}) {
		t.Fatalf("ask split after layout: %v", resp)
	}
	// Regions returns clones.
	got[0].StartKey = []byte("zzz")
	mustTile(t, h.pd)
}

func TestStoreHello(t *testing.T) {
	h := newHarness(t, LayoutFromSplitKeys([][]byte{[]byte("g"), []byte("p")}, 2, []uint64{1, 2, 3}))
	h.send(1, &pb.StoreHello{StoreId: 1, Address: "s1:1"})
	m := h.net.take(t)
	if m.GetFrom() != pdID || m.GetTo() != 1 {
		t.Fatalf("reply addressed %d -> %d", m.GetFrom(), m.GetTo())
	}
	b := m.GetBootstrap()
	if b.GetError() != "" || b.GetStoreId() != 1 {
		t.Fatalf("bootstrap %v", b)
	}
	var ids []uint64
	for _, r := range b.GetRegions() {
		ids = append(ids, r.GetId())
	}
	if !slices.Equal(ids, []uint64{1, 7}) { // region 0 on stores 1,2; region 2 on stores 3,1
		t.Fatalf("store 1 got regions %v", ids)
	}
	if st := h.pd.Stores(); len(st) != 3 || st[0].ID != 1 || st[0].Address != "s1:1" || !st[0].Registered ||
		st[1].Registered || st[0].State != StoreUp || st[0].Regions != 2 {
		t.Fatalf("stores %+v", st)
	}

	// A split, once published, does not change what a first boot gets.
	r0 := h.pd.Regions()[0]
	ask := h.askSplit(t, r0)
	l, r := split(r0, "c", ask.GetNewRegionId(), ask.GetNewPeerIds())
	h.send(1, &pb.ReportSplit{Left: l, Right: r})
	if len(h.pd.Regions()) != 4 {
		t.Fatalf("split not published: %s", describe(h.pd.Regions()))
	}
	h.send(1, &pb.StoreHello{StoreId: 1, Address: "s1:1"})
	if b2 := h.net.take(t).GetBootstrap(); !proto.Equal(b, b2) {
		t.Fatalf("repeated hello answered differently:\n%v\n%v", b, b2)
	}
}

func TestUnknownStoreHello(t *testing.T) {
	h := newHarness(t, layout("m"))
	h.send(9, &pb.StoreHello{StoreId: 9})
	m := h.net.take(t)
	b := m.GetBootstrap()
	if m.GetTo() != 9 || b == nil || b.GetError() == "" || len(b.GetRegions()) != 0 {
		t.Fatalf("unknown store got %v", m)
	}
	if !strings.Contains(b.GetError(), "9") {
		t.Fatalf("error does not name the store: %q", b.GetError())
	}
	if h.pd.Stats().UnknownStores != 1 || len(h.pd.Stores()) != 3 {
		t.Fatalf("stats %+v stores %+v", h.pd.Stats(), h.pd.Stores())
	}
}

func TestStoreHeartbeat(t *testing.T) {
	h := newHarness(t, layout("m"))
	h.clock.t = time.Unix(2000, 0)
	h.send(2, &pb.StoreHeartbeat{StoreId: 2, RegionCount: 5, LeaderCount: 2, UsedBytes: 4096})
	h.send(9, &pb.StoreHeartbeat{StoreId: 9, RegionCount: 1})
	st := h.pd.Stores()
	if len(st) != 3 {
		t.Fatalf("stores %+v", st)
	}
	s := st[1]
	if s.ID != 2 || s.RegionCount != 5 || s.LeaderCount != 2 || s.UsedBytes != 4096 ||
		!s.LastHeartbeat.Equal(time.Unix(2000, 0)) || s.Heartbeats != 1 {
		t.Fatalf("store info %+v", s)
	}
	if len(h.net.sent) != 0 {
		t.Fatalf("heartbeat answered: %v", h.net.sent)
	}
	// The known store gets the store list; the unknown one nothing.
	if l := h.net.storeLists; len(l) != 1 || l[0].GetTo() != 2 || !slices.Equal(l[0].GetStoreHeartbeatResponse().GetStoreIds(), []uint64{1, 2, 3}) {
		t.Fatalf("store lists sent: %v", l)
	}
	if h.pd.Stats().UnknownStores != 1 {
		t.Fatalf("stats %+v", h.pd.Stats())
	}
}

func TestHeartbeatUpdatesLeader(t *testing.T) {
	h := newHarness(t, layout("m"))
	r := h.pd.Regions()[1]
	leader := r.GetPeers()[2]
	h.send(leader.GetStoreId(), &pb.RegionHeartbeat{Region: r, Leader: leader, ApproximateSize: 123})
	infos := h.pd.RegionInfos()
	if !proto.Equal(infos[1].GetLeader(), leader) || infos[0].GetLeader() != nil {
		t.Fatalf("infos %v", infos)
	}
	resp := h.getRegion(t, "x", 5)
	if !proto.Equal(resp.GetLeader(), leader) || resp.GetRegion().GetId() != r.GetId() {
		t.Fatalf("get region %v", resp)
	}
	// A new leader at the same epoch replaces the old.
	h.send(1, &pb.RegionHeartbeat{Region: r, Leader: r.GetPeers()[0]})
	if got := h.pd.RegionInfos()[1].GetLeader(); !proto.Equal(got, r.GetPeers()[0]) {
		t.Fatalf("leader %v", got)
	}
	if s := h.pd.Stats(); s.RegionHeartbeats != 2 || s.StaleHeartbeats != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestStaleHeartbeatIgnored(t *testing.T) {
	h := newHarness(t, layout("m"))
	v1 := h.pd.Regions()[0]
	// Membership change: conf_ver 2, same range, published at once.
	c2 := proto.Clone(v1).(*pb.Region)
	c2.Epoch.ConfVer = 2
	c2.Peers = c2.Peers[:2]
	h.pd.allowConfChange(c2.GetId(), v1.GetEpoch(), 1)
	h.send(1, &pb.RegionHeartbeat{Region: c2, Leader: c2.Peers[0]})
	if got := h.pd.Regions()[0]; !proto.Equal(got, c2) {
		t.Fatalf("conf change not published: %v", got)
	}
	// The old conf_ver comes late: ignored, counted, nothing rolls back.
	h.send(3, &pb.RegionHeartbeat{Region: v1, Leader: v1.Peers[2]})
	if got := h.pd.RegionInfos()[0]; !proto.Equal(got.GetRegion(), c2) || !proto.Equal(got.GetLeader(), c2.Peers[0]) {
		t.Fatalf("stale conf_ver rolled back: %v", got)
	}
	if s := h.pd.Stats(); s.StaleHeartbeats != 1 {
		t.Fatalf("stats %+v", s)
	}
	// Higher version but lower conf_ver is inconsistent: ignored too.
	odd := proto.Clone(v1).(*pb.Region)
	odd.Epoch.Version = 2
	odd.EndKey = []byte("f")
	h.send(1, &pb.RegionHeartbeat{Region: odd})
	if s := h.pd.Stats(); s.StaleHeartbeats != 1 || s.RejectedHeartbeats != 1 || s.Pending != 0 {
		t.Fatalf("stats %+v", s)
	}
	// Split, then a heartbeat of the pre-split version: ignored.
	ask := h.askSplit(t, c2)
	l, r := split(c2, "f", ask.GetNewRegionId(), ask.GetNewPeerIds())
	h.heartbeat(l)
	h.heartbeat(r)
	before := h.pd.Regions()
	h.heartbeat(c2)
	h.heartbeat(v1)
	// A stale region of an id PD allocated for a split that never applied
	// (it overlaps newer regions) is ignored.
	ghost := proto.Clone(v1).(*pb.Region)
	ghost.Id, _ = h.pd.allocSplit(v1)
	h.heartbeat(ghost)
	after := h.pd.Regions()
	if len(after) != 3 || len(before) != 3 {
		t.Fatalf("view %s", describe(after))
	}
	for i := range after {
		if !proto.Equal(before[i], after[i]) {
			t.Fatalf("stale heartbeat changed the view: %s -> %s", describe(before), describe(after))
		}
	}
	if s := h.pd.Stats(); s.StaleHeartbeats != 4 || s.RejectedHeartbeats != 1 || s.Pending != 0 {
		t.Fatalf("stats %+v", s)
	}
	// Invalid reports are rejected, not applied.
	h.send(1, &pb.RegionHeartbeat{})
	bad := proto.Clone(l).(*pb.Region)
	bad.Epoch.ConfVer++
	bad.EndKey = []byte("e") // same version, another range
	h.send(1, &pb.RegionHeartbeat{Region: bad})
	if s := h.pd.Stats(); s.RejectedHeartbeats != 3 {
		t.Fatalf("stats %+v", s)
	}
	mustTile(t, h.pd)
}

func TestSplitByHeartbeats(t *testing.T) {
	for _, order := range []string{"left-first", "right-first"} {
		t.Run(order, func(t *testing.T) {
			h := newHarness(t, layout())
			parent := h.pd.Regions()[0]
			ask := h.askSplit(t, parent)
			l, r := split(parent, "m", ask.GetNewRegionId(), ask.GetNewPeerIds())
			first, second := l, r
			if order == "right-first" {
				first, second = r, l
			}
			h.heartbeat(first)
			mustTile(t, h.pd)
			view := h.pd.Regions()
			if len(view) != 1 || !view[0].SameRange(parent) || view[0].GetEpoch().GetVersion() != 1 {
				t.Fatalf("half a split published: %s", describe(view))
			}
			if got := h.pd.PendingRegions(); len(got) != 1 || !proto.Equal(got[0], first) {
				t.Fatalf("pending %s", describe(got))
			}
			// Every key is still routed: the old wide region serves it.
			for _, k := range []string{"", "a", "m", "z"} {
				if got := h.getRegion(t, k, 1).GetRegion(); got.GetId() != parent.GetId() {
					t.Fatalf("key %q routed to %v", k, got)
				}
			}
			h.heartbeat(first) // a duplicate changes nothing
			mustTile(t, h.pd)
			if len(h.pd.Regions()) != 1 {
				t.Fatalf("view %s", describe(h.pd.Regions()))
			}
			h.heartbeat(second)
			mustTile(t, h.pd)
			view = h.pd.Regions()
			if len(view) != 2 || !proto.Equal(view[0], l) || !proto.Equal(view[1], r) {
				t.Fatalf("after both halves: %s", describe(view))
			}
			if s := h.pd.Stats(); s.Pending != 0 || s.ViewChanges != 1 {
				t.Fatalf("stats %+v", s)
			}
			if got := h.getRegion(t, "m", 2).GetRegion(); got.GetId() != r.GetId() {
				t.Fatalf("key m routed to %v", got)
			}
			if got := h.getRegion(t, "l\xff", 3).GetRegion(); got.GetId() != l.GetId() {
				t.Fatalf("key l\\xff routed to %v", got)
			}
		})
	}
}

// A region splits, then both halves split again, before PD hears of any of
// it; the reports arrive newest generation first.
func TestNestedSplitsOutOfOrder(t *testing.T) {
	h := newHarness(t, layout())
	a1 := h.pd.Regions()[0]
	ask := h.askSplit(t, a1)
	a2, b2 := split(a1, "m", ask.GetNewRegionId(), ask.GetNewPeerIds())
	if ask := h.askSplit(t, b2); ask.GetError() == "" {
		t.Fatal("ask split for a region PD has not heard of succeeded")
	}
	// Both halves split before PD hears of them (their leaders' AskSplits
	// were answered while their first heartbeats were lost).
	id, peers := h.pd.allocSplit(b2)
	b3, c3 := split(b2, "t", id, peers)
	id, peers = h.pd.allocSplit(a2)
	a3, d3 := split(a2, "f", id, peers)
	for _, r := range []*pb.Region{c3, d3, b3} {
		h.heartbeat(r)
		mustTile(t, h.pd)
		if n := len(h.pd.Regions()); n != 1 {
			t.Fatalf("published too early after %s: %s", r.Describe(), describe(h.pd.Regions()))
		}
	}
	h.heartbeat(b2) // older than b3, pending for the same id
	if s := h.pd.Stats(); s.StaleHeartbeats != 1 || s.Pending != 3 {
		t.Fatalf("stats %+v", s)
	}
	// a2, b3, c3 together cover a1: published; d3 waits for a3.
	h.heartbeat(a2)
	mustTile(t, h.pd)
	want := []*pb.Region{a2, b3, c3}
	if got := h.pd.Regions(); describe(got) != describe(want) {
		t.Fatalf("view %s, want %s", describe(got), describe(want))
	}
	if got := h.pd.PendingRegions(); len(got) != 1 || !proto.Equal(got[0], d3) {
		t.Fatalf("pending %s", describe(got))
	}
	h.heartbeat(a3)
	mustTile(t, h.pd)
	want = []*pb.Region{a3, d3, b3, c3}
	got := h.pd.Regions()
	for i := range want {
		if len(got) != len(want) || !proto.Equal(got[i], want[i]) {
			t.Fatalf("view %s, want %s", describe(got), describe(want))
		}
	}
	if s := h.pd.Stats(); s.Pending != 0 || s.ViewChanges != 2 {
		t.Fatalf("stats %+v", s)
	}
}

func TestReportSplit(t *testing.T) {
	h := newHarness(t, layout("m"))
	parent := h.pd.Regions()[1]
	ask := h.askSplit(t, parent)
	l, r := split(parent, "t", ask.GetNewRegionId(), ask.GetNewPeerIds())
	h.send(1, &pb.ReportSplit{Left: l, Right: r})
	mustTile(t, h.pd)
	view := h.pd.Regions()
	if len(view) != 3 || !proto.Equal(view[1], l) || !proto.Equal(view[2], r) {
		t.Fatalf("view %s", describe(view))
	}
	// Reported again, or a heartbeat of the halves: nothing changes.
	h.send(1, &pb.ReportSplit{Left: l, Right: r})
	h.heartbeat(r)
	if s := h.pd.Stats(); s.SplitReports != 2 || s.StaleSplitReports != 1 || s.ViewChanges != 1 {
		t.Fatalf("stats %+v", s)
	}
	// A report whose left is older than PD's is ignored entirely.
	h.send(1, &pb.ReportSplit{Left: parent, Right: r})
	// Halves that are not adjacent are ignored.
	l2, r2 := split(l, "p", 777, []uint64{778, 779, 780})
	r2.StartKey = []byte("q")
	h.send(1, &pb.ReportSplit{Left: l2, Right: r2})
	if s := h.pd.Stats(); s.StaleSplitReports != 3 {
		t.Fatalf("stats %+v", s)
	}
	if got := h.pd.Regions(); len(got) != 3 || !proto.Equal(got[1], l) {
		t.Fatalf("view %s", describe(got))
	}
}

func TestGetRegionAtBoundaries(t *testing.T) {
	h := newHarness(t, layout("g", "p"))
	regions := h.pd.Regions()
	cases := []struct {
		key  string
		want int
	}{
		{"", 0}, {"a", 0}, {"f\xff\xff", 0}, {"g", 1}, {"g\x00", 1}, {"o", 1}, {"p", 2}, {"zzzz", 2}, {"\xff\xff", 2},
	}
	for i, c := range cases {
		resp := h.getRegion(t, c.key, uint64(i+1))
		if !proto.Equal(resp.GetRegion(), regions[c.want]) {
			t.Errorf("key %q: got %v want %v", c.key, resp.GetRegion(), regions[c.want])
		}
	}
	h.send(42, &pb.ListRegionsRequest{RequestId: 77})
	m := h.net.take(t)
	lr := m.GetListRegionsResponse()
	if m.GetTo() != 42 || m.GetFrom() != pdID || lr.GetRequestId() != 77 || len(lr.GetRegions()) != 3 {
		t.Fatalf("list regions %v", m)
	}
	for i, ri := range lr.GetRegions() {
		if !proto.Equal(ri.GetRegion(), regions[i]) {
			t.Fatalf("list entry %d: %v", i, ri)
		}
	}
}

func TestAskSplit(t *testing.T) {
	h := newHarness(t, layout("m"))
	r0 := h.pd.Regions()[0] // ids 1..8 used by the layout
	seen := map[uint64]bool{}
	for _, r := range h.pd.Regions() {
		seen[r.GetId()] = true
		for _, p := range r.GetPeers() {
			seen[p.GetId()] = true
		}
	}
	last := uint64(8)
	for i := 0; i < 5; i++ {
		resp := h.askSplit(t, r0) // a retry gets fresh ids
		if resp.GetError() != "" || len(resp.GetNewPeerIds()) != len(r0.GetPeers()) {
			t.Fatalf("ask split: %v", resp)
		}
		for _, id := range append([]uint64{resp.GetNewRegionId()}, resp.GetNewPeerIds()...) {
			if seen[id] || id <= last {
				t.Fatalf("id %d reused or not increasing (last %d)", id, last)
			}
			seen[id] = true
			last = id
		}
	}
	unknown := proto.Clone(r0).(*pb.Region)
	unknown.Id = 4242
	if resp := h.askSplit(t, unknown); !strings.Contains(resp.GetError(), "unknown") || resp.GetNewRegionId() != 0 {
		t.Fatalf("unknown region: %v", resp)
	}
	newer := proto.Clone(r0).(*pb.Region)
	newer.Epoch.ConfVer = 5
	h.pd.allowConfChange(r0.GetId(), &pb.Epoch{ConfVer: 3}, 2) // a joint change ordered at conf_ver 3
	h.heartbeat(newer)
	if resp := h.askSplit(t, r0); !strings.Contains(resp.GetError(), "older") {
		t.Fatalf("older epoch: %v", resp)
	}
	newest := proto.Clone(newer).(*pb.Region)
	newest.Epoch.ConfVer = 6 // PD lags behind the store: fine
	if resp := h.askSplit(t, newest); !strings.Contains(resp.GetError(), "conf_ver 6 is beyond") {
		t.Fatalf("conf_ver PD never ordered: %v", resp)
	}
	h.pd.allowConfChange(r0.GetId(), newer.GetEpoch(), 1)
	if resp := h.askSplit(t, newest); resp.GetError() != "" || resp.GetNewRegionId() <= last {
		t.Fatalf("newer epoch: %v", resp)
	}
	if s := h.pd.Stats(); s.AskSplits != 9 || s.AskSplitErrors != 3 {
		t.Fatalf("stats %+v", s)
	}
}

// PD allocates every id, so a report naming an id it never handed out, or
// an epoch beyond what its splits and orders allow, is forged or corrupt:
// refused, and the allocator never moves (a heartbeat naming region id
// 2^64-1 once wrapped it to 0 and the next split reused ids in use).
func TestReportsBeyondWhatPDHandedOutAreRefused(t *testing.T) {
	h := newHarness(t, layout())
	a := h.pd.Regions()[0] // region 1, peers 2-4
	huge := proto.Clone(a).(*pb.Region)
	huge.Id = math.MaxUint64
	h.heartbeat(huge)
	l, r := split(a, "m", 50, []uint64{51, 52, 53})
	h.send(1, &pb.ReportSplit{Left: l, Right: r})
	jump := proto.Clone(a).(*pb.Region)
	jump.Epoch.Version = 1 << 40
	h.heartbeat(jump)
	peer := proto.Clone(a).(*pb.Region)
	peer.Epoch.ConfVer = 2
	peer.Peers[0].Id = 1 << 50
	h.heartbeat(peer)
	if s := h.pd.Stats(); s.RejectedHeartbeats != 3 || s.StaleSplitReports != 1 {
		t.Fatalf("stats %+v", s)
	}
	if got := h.pd.Regions(); len(got) != 1 || !proto.Equal(got[0], a) {
		t.Fatalf("view changed: %v", describe(got))
	}
	if resp := h.askSplit(t, a); resp.GetNewRegionId() != 5 {
		t.Fatalf("allocator moved: %v", resp)
	}
	// The split PD did hand ids out for is accepted, once.
	resp := h.askSplit(t, a)
	l, r = split(a, "m", resp.GetNewRegionId(), resp.GetNewPeerIds())
	h.send(1, &pb.ReportSplit{Left: l, Right: r})
	if got := h.pd.Regions(); len(got) != 2 {
		t.Fatalf("split with allocated ids not published: %v", describe(got))
	}
}

func TestMalformed(t *testing.T) {
	h := newHarness(t, layout())
	h.pd.Receive(nil)
	h.pd.Receive(&pb.Envelope{From: 1, To: pdID})
	h.pd.Receive(&pb.Envelope{From: 1, To: pdID, Body: &pb.Envelope_KvRequest{KvRequest: &pb.KvRequest{}}})
	h.pd.Receive(&pb.Envelope{From: 1, To: pdID, Body: &pb.Envelope_Bootstrap{Bootstrap: &pb.Bootstrap{}}})
	h.pd.Tick()
	if s := h.pd.Stats(); s.Malformed != 4 {
		t.Fatalf("stats %+v", s)
	}
	if len(h.net.sent) != 0 {
		t.Fatalf("malformed messages answered: %v", h.net.sent)
	}
	mustTile(t, h.pd)
}

// TestDeterministic runs the same script twice and compares everything PD sent.
func TestDeterministic(t *testing.T) {
	run := func() []*pb.Envelope {
		h := newHarness(t, layout("d", "k", "s"))
		var all []*pb.Envelope
		for _, s := range []uint64{3, 1, 2} {
			h.send(s, &pb.StoreHello{StoreId: s})
			all = append(all, h.net.take(t))
		}
		for i, r := range h.pd.Regions() {
			ask := h.askSplit(t, r)
			all = append(all, &pb.Envelope{Body: &pb.Envelope_AskSplitResponse{AskSplitResponse: ask}})
			l, rr := split(r, string(r.GetStartKey())+"b", ask.GetNewRegionId(), ask.GetNewPeerIds())
			if i%2 == 0 {
				h.heartbeat(rr)
				h.heartbeat(l)
			} else {
				h.send(1, &pb.ReportSplit{Left: l, Right: rr})
			}
		}
		h.send(5, &pb.ListRegionsRequest{RequestId: 1})
		return append(all, h.net.take(t))
	}
	a, b := run(), run()
	if len(a) != len(b) {
		t.Fatalf("%d vs %d messages", len(a), len(b))
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			t.Fatalf("message %d differs:\n%v\n%v", i, a[i], b[i])
		}
	}
	if n := len(a[len(a)-1].GetListRegionsResponse().GetRegions()); n != 8 {
		t.Fatalf("%d regions after 4 splits", n)
	}
}

// TestSplitsProperty drives a true cluster history of splits and membership
// changes, and delivers its region states to PD as heartbeats and split
// reports in random order, with stale duplicates. After every delivery the
// routing view must tile the keyspace, hold only states that really existed,
// and never move an epoch back; once every region's latest state has been
// delivered the view must equal the real layout.
func TestSplitsProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		keyGen := rapid.Custom(func(t *rapid.T) string {
			return string(rapid.SliceOfN(rapid.ByteRange('a', 'e'), 1, 3).Draw(t, "keybytes"))
		})
		initKeys := rapid.SliceOfNDistinct(keyGen, 0, 3, rapid.ID[string]).Draw(rt, "initial")
		slices.Sort(initKeys)
		stores := []uint64{1, 2, 3}
		replicas := rapid.IntRange(1, 3).Draw(rt, "replicas")
		bs := make([][]byte, len(initKeys))
		for i, k := range initKeys {
			bs[i] = []byte(k)
		}
		h := newHarness(rt, LayoutFromSplitKeys(bs, replicas, stores))

		truth := map[uint64]*pb.Region{} // current state of every region
		var history []*pb.Region         // every state that ever existed
		type pair struct{ l, r *pb.Region }
		var splits []pair
		existed := func(r *pb.Region) bool {
			for _, s := range history {
				if proto.Equal(s, r) {
					return true
				}
			}
			return false
		}
		for _, r := range h.pd.Regions() {
			truth[r.GetId()] = r
			history = append(history, r)
		}
		ids := func() []uint64 {
			out := slices.Collect(func(yield func(uint64) bool) {
				for id := range truth {
					if !yield(id) {
						return
					}
				}
			})
			slices.Sort(out)
			return out
		}

		prev := h.pd.Regions()
		maxEpoch := map[uint64]*pb.Epoch{}
		check := func(step string) {
			view := h.pd.Regions()
			if err := tiles(view); err != nil {
				rt.Fatalf("%s: view does not tile: %v\n%s", step, err, describe(view))
			}
			inView := map[uint64]bool{}
			for _, r := range view {
				if inView[r.GetId()] {
					rt.Fatalf("%s: region %d twice in view", step, r.GetId())
				}
				inView[r.GetId()] = true
				if !existed(r) {
					rt.Fatalf("%s: view holds a state that never existed: %s", step, r.Describe())
				}
				if m := maxEpoch[r.GetId()]; m != nil && r.GetEpoch().Older(m) {
					rt.Fatalf("%s: region %d epoch went down: %v -> %v", step, r.GetId(), m, r.GetEpoch())
				}
				maxEpoch[r.GetId()] = r.GetEpoch()
				for _, o := range prev {
					if r.Overlaps(o) &&
						r.GetEpoch().GetVersion() < o.GetEpoch().GetVersion() {
						rt.Fatalf("%s: version went down over %s: %s -> %s", step,
							pb.FormatRange(r.GetStartKey(), r.GetEndKey()), o.Describe(), r.Describe())
					}
				}
			}
			for _, o := range prev {
				if !inView[o.GetId()] {
					rt.Fatalf("%s: region %d left the view", step, o.GetId())
				}
			}
			prev = view
		}

		steps := rapid.IntRange(0, 60).Draw(rt, "steps")
		for i := 0; i < steps; i++ {
			switch rapid.IntRange(0, 9).Draw(rt, "action") {
			case 0, 1, 2: // a region splits (not delivered yet)
				all := ids()
				r := truth[rapid.SampledFrom(all).Draw(rt, "split region")]
				key := keyGen.Draw(rt, "split key")
				if key <= string(r.GetStartKey()) || (len(r.GetEndKey()) != 0 && key >= string(r.GetEndKey())) {
					continue
				}
				id, newPeers := h.pd.allocSplit(r)
				l, rr := split(r, key, id, newPeers)
				truth[l.GetId()], truth[rr.GetId()] = l, rr
				history = append(history, l, rr)
				splits = append(splits, pair{l, rr})
			case 3: // a membership change (conf_ver only)
				r := proto.Clone(truth[rapid.SampledFrom(ids()).Draw(rt, "conf region")]).(*pb.Region)
				h.pd.allowConfChange(r.GetId(), r.GetEpoch(), 1)
				r.Epoch.ConfVer++
				truth[r.GetId()] = r
				history = append(history, r)
			case 4, 5, 6, 7, 8: // a heartbeat of any state, old or new
				r := rapid.SampledFrom(history).Draw(rt, "heartbeat")
				h.heartbeat(r)
				check(fmt.Sprintf("heartbeat %s", r.Describe()))
			case 9: // a split report, maybe a stale one
				if len(splits) == 0 {
					continue
				}
				s := rapid.SampledFrom(splits).Draw(rt, "report")
				h.send(1, &pb.ReportSplit{Left: s.l, Right: s.r})
				check(fmt.Sprintf("report %s + %s", s.l.Describe(), s.r.Describe()))
			}
		}
		// Liveness: every region reports its latest state, in random order.
		for _, id := range rapid.Permutation(ids()).Draw(rt, "final order") {
			h.heartbeat(truth[id])
			check(fmt.Sprintf("final heartbeat %s", truth[id].Describe()))
		}
		want := make([]*pb.Region, 0, len(truth))
		for _, id := range ids() {
			want = append(want, truth[id])
		}
		slices.SortFunc(want, func(a, b *pb.Region) int { return bytes.Compare(a.GetStartKey(), b.GetStartKey()) })
		got := h.pd.Regions()
		if len(got) != len(want) {
			rt.Fatalf("final view\n got %s\nwant %s", describe(got), describe(want))
		}
		for i := range want {
			if !proto.Equal(got[i], want[i]) {
				rt.Fatalf("final view\n got %s\nwant %s", describe(got), describe(want))
			}
		}
		if n := h.pd.Stats().Pending; n != 0 {
			rt.Fatalf("%d states still pending: %s", n, describe(h.pd.PendingRegions()))
		}
	})
}

// During a partition two peers may both report leading the region at the
// same epoch: PD believes the report of the higher term, whatever the
// order they arrive in.
func TestHeartbeatOfTheHigherTermLeaderWins(t *testing.T) {
	h := newHarness(t, layout())
	r := h.pd.Regions()[0]
	newer, deposed := r.GetPeers()[1], r.GetPeers()[0]
	h.send(newer.GetStoreId(), &pb.RegionHeartbeat{Region: r, Leader: newer, Term: 8})
	h.send(deposed.GetStoreId(), &pb.RegionHeartbeat{Region: r, Leader: deposed, Term: 7})
	if got := h.pd.RegionInfos()[0].GetLeader(); !proto.Equal(got, newer) {
		t.Fatalf("leader %v after a deposed leader's late heartbeat, want %v", got, newer)
	}
	h.send(deposed.GetStoreId(), &pb.RegionHeartbeat{Region: r, Leader: deposed, Term: 9})
	if got := h.pd.RegionInfos()[0].GetLeader(); !proto.Equal(got, deposed) {
		t.Fatalf("leader %v after a newer term's heartbeat, want %v", got, deposed)
	}
}
