package pb

import (
	"strings"
	"testing"
)

func TestRegionRange(t *testing.T) {
	r := &Region{StartKey: []byte("b"), EndKey: []byte("d")}
	inf := &Region{StartKey: []byte("c")}
	for _, c := range []struct {
		r    *Region
		key  string
		want bool
	}{
		{r, "a", false}, {r, "b", true}, {r, "c", true}, {r, "d", false},
		{inf, "b", false}, {inf, "c", true}, {inf, "zzzz", true},
		{&Region{}, "", true}, {nil, "x", true}, // nil: the whole keyspace, like an empty region
	} {
		if got := c.r.ContainsKey([]byte(c.key)); got != c.want {
			t.Errorf("%v contains %q = %v, want %v", c.r.RangeString(), c.key, got, c.want)
		}
	}
	for _, c := range []struct {
		a, b *Region
		want bool
	}{
		{r, inf, true},
		{r, &Region{StartKey: []byte("d")}, false},
		{r, &Region{StartKey: []byte("a"), EndKey: []byte("b")}, false},
		{r, &Region{StartKey: []byte("a"), EndKey: []byte("bb")}, true},
		{&Region{}, inf, true},
	} {
		if got, back := c.a.Overlaps(c.b), c.b.Overlaps(c.a); got != c.want || back != c.want {
			t.Errorf("%v overlaps %v = %v/%v, want %v", c.a.RangeString(), c.b.RangeString(), got, back, c.want)
		}
	}
	if got := inf.RangeString(); got != `["c",+inf)` {
		t.Errorf("RangeString = %s", got)
	}
	if got := r.RangeString(); got != `["b","d")` {
		t.Errorf("RangeString = %s", got)
	}
}

func TestRegionPeersAndEpochs(t *testing.T) {
	r := &Region{Epoch: &Epoch{ConfVer: 2, Version: 3}, Peers: []*Peer{{Id: 7, StoreId: 1}, {Id: 9, StoreId: 2, Role: PeerRole_LEARNER}}}
	if p := r.PeerOnStore(2); p.GetId() != 9 {
		t.Fatalf("PeerOnStore(2) = %v", p)
	}
	if p := r.PeerByID(7); p.GetStoreId() != 1 {
		t.Fatalf("PeerByID(7) = %v", p)
	}
	if r.PeerOnStore(3) != nil || r.PeerByID(8) != nil {
		t.Fatal("found a peer that is not there")
	}
	if !r.Initialized() || (&Region{Id: 4}).Initialized() {
		t.Fatal("Initialized is wrong")
	}
	e := r.GetEpoch()
	for _, c := range []struct {
		o            *Epoch
		equal, older bool
	}{
		{&Epoch{ConfVer: 2, Version: 3}, true, false},
		{&Epoch{ConfVer: 3, Version: 3}, false, true},
		{&Epoch{ConfVer: 2, Version: 4}, false, true},
		{&Epoch{ConfVer: 1, Version: 4}, false, true}, // inconsistent: older either way
		{&Epoch{ConfVer: 1, Version: 3}, false, false},
	} {
		if e.Equal(c.o) != c.equal || e.Older(c.o) != c.older {
			t.Errorf("%v vs %v: equal %v older %v", e, c.o, e.Equal(c.o), e.Older(c.o))
		}
	}
}

func TestKvRequestKeyAndValidate(t *testing.T) {
	put := &KvRequest{Op: &KvRequest_Put{Put: &PutRequest{Key: []byte("k")}}}
	scan := &KvRequest{Op: &KvRequest_Scan{Scan: &ScanRequest{StartKey: []byte("a"), EndKey: []byte("c")}}}
	if string(put.Key()) != "k" || !put.IsWrite() || put.Validate() != nil {
		t.Fatal("put")
	}
	if string(scan.Key()) != "a" || scan.IsWrite() || scan.Validate() != nil {
		t.Fatal("scan")
	}
	for _, bad := range []*KvRequest{
		{},
		{Op: &KvRequest_Get{Get: &GetRequest{}}},
		{Op: &KvRequest_Cas{Cas: &CasRequest{}}},
		{Op: &KvRequest_Scan{Scan: &ScanRequest{StartKey: []byte("c"), EndKey: []byte("a")}}},
	} {
		if bad.Validate() == nil {
			t.Errorf("%v validated", bad)
		}
	}
	id := []byte("0123456789abcdef")
	sessioned := func(s *Session) *KvRequest {
		return &KvRequest{Op: &KvRequest_Put{Put: &PutRequest{Key: []byte("k")}}, Session: s}
	}
	if err := sessioned(&Session{Id: id, Sequence: 2, Lowest: 2, StartedMs: 1}).Validate(); err != nil {
		t.Fatalf("sessioned put: %v", err)
	}
	for _, tc := range []struct {
		s    *Session
		want string
	}{
		{&Session{Id: id[:15], Sequence: 1, Lowest: 1, StartedMs: 1}, "session id of 15 bytes, want 16"},
		{&Session{Id: append(id, 'x'), Sequence: 1, Lowest: 1, StartedMs: 1}, "session id of 17 bytes, want 16"},
		{&Session{Sequence: 1, Lowest: 1, StartedMs: 1}, "session id of 0 bytes"},
		{&Session{Id: id, Sequence: 0, StartedMs: 1}, "session sequence 0"},
		{&Session{Id: id, Sequence: 2, Lowest: 3, StartedMs: 1}, "lowest 3 is above the write's sequence 2"},
		{&Session{Id: id, Sequence: 1, Lowest: 1}, "without started_ms"},
	} {
		err := sessioned(tc.s).Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want an error naming %q", tc.s, err, tc.want)
		}
	}
	cmd := &RaftCommand{Cmd: &RaftCommand_Delete{Delete: &DeleteRequest{Key: []byte("d")}}}
	if string(cmd.Key()) != "d" || (&RaftCommand{Cmd: &RaftCommand_Split{}}).Key() != nil {
		t.Fatal("RaftCommand.Key")
	}
}
