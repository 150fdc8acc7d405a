package storage

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core/kv"
	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/rng"
	"github.com/multiraft/multiraft/sim/simfs"
)

const testDir = "/store"

// tester is what the helpers need of a *testing.T or a *rapid.T.
type tester interface {
	Helper()
	Fatalf(format string, args ...any)
}

// regionMeta is a region with three voters on stores 1-3.
func regionMeta(id uint64, start, end string, version uint64) *pb.Region {
	r := &pb.Region{Id: id, Epoch: &pb.Epoch{ConfVer: 1, Version: version}}
	if start != "" {
		r.StartKey = []byte(start)
	}
	if end != "" {
		r.EndKey = []byte(end)
	}
	for s := uint64(1); s <= 3; s++ {
		r.Peers = append(r.Peers, &pb.Peer{Id: id*10 + s, StoreId: s})
	}
	return r
}

// bootstrapState is a new region's whole state as a store bootstraps it:
// applied and truncated at 5, term 5, committed 5.
func bootstrapState(meta *pb.Region) *pb.RegionCheckpoint {
	var voters []uint64
	for _, p := range meta.GetPeers() {
		voters = append(voters, p.GetId())
	}
	return &pb.RegionCheckpoint{
		Region:         proto.Clone(meta).(*pb.Region),
		AppliedIndex:   5,
		TruncatedIndex: 5,
		TruncatedTerm:  5,
		HardState:      &raftpb.HardState{Term: proto.Uint64(5), Commit: proto.Uint64(5)},
		ConfState:      &raftpb.ConfState{Voters: voters},
	}
}

func ent(index, term uint64, data string) *raftpb.Entry {
	return &raftpb.Entry{
		Index: proto.Uint64(index),
		Term:  proto.Uint64(term),
		Type:  raftpb.EntryType_EntryNormal.Enum(),
		Data:  []byte(data),
	}
}

func hardState(term, vote, commit uint64) *raftpb.HardState {
	return &raftpb.HardState{Term: proto.Uint64(term), Vote: proto.Uint64(vote), Commit: proto.Uint64(commit)}
}

func mustOpen(t tester, fs vfs.FS, opts Options) *Engine {
	t.Helper()
	e, err := Open(fs, testDir, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return e
}

func check(t tester, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%v", err)
	}
}

// crashFS is the disk after a crash of fs keeping keep% of unsynced data.
func crashFS(t tester, fs *simfs.FaultFS, seed uint64, keep int) *simfs.FaultFS {
	t.Helper()
	out, err := fs.Crash(rng.New(seed), keep)
	if err != nil {
		t.Fatalf("crash: %v", err)
	}
	return out
}

// newFaultFS is a new disk, which tracks its synced state for crashFS.
func newFaultFS(seed uint64) *simfs.FaultFS {
	return simfs.NewFaultFS(vfs.NewMem(), rng.New(seed))
}

// ---- views: a canonical text of everything an engine holds

// regionView is one region's whole observable state.
type regionView struct {
	ID        uint64
	Meta      string
	State     pb.PeerState
	Applied   uint64
	Trunc     uint64 // first index - 1
	TruncTerm uint64
	Hard      [3]uint64 // term, vote, commit
	Conf      string
	Entries   []string
	Keys      []string
}

type engineView struct {
	Ident   string
	Regions []regionView
}

func (v engineView) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ident %s\n", v.Ident)
	for _, r := range v.Regions {
		fmt.Fprintf(&b, "region %d %s state=%v applied=%d trunc=%d/%d hard=%v conf=%s\n",
			r.ID, r.Meta, r.State, r.Applied, r.Trunc, r.TruncTerm, r.Hard, r.Conf)
		fmt.Fprintf(&b, "  entries %s\n", strings.Join(r.Entries, " "))
		fmt.Fprintf(&b, "  keys %s\n", strings.Join(r.Keys, " "))
	}
	return b.String()
}

func metaString(m *pb.Region) string {
	var peers []string
	for _, p := range m.GetPeers() {
		peers = append(peers, fmt.Sprintf("%d@%d/%v", p.GetId(), p.GetStoreId(), p.GetRole()))
	}
	return fmt.Sprintf("[%q,%q) v%d/c%d peers=%s", m.GetStartKey(), m.GetEndKey(),
		m.GetEpoch().GetVersion(), m.GetEpoch().GetConfVer(), strings.Join(peers, ","))
}

func confString(c *raftpb.ConfState) string {
	return fmt.Sprintf("v%v l%v vo%v ln%v al%v", c.GetVoters(), c.GetLearners(), c.GetVotersOutgoing(), c.GetLearnersNext(), c.GetAutoLeave())
}

func entryString(e *raftpb.Entry) string {
	return fmt.Sprintf("%d/%d/%v:%q", e.GetIndex(), e.GetTerm(), e.GetType(), e.GetData())
}

func kvString(key, value []byte, version uint64) string {
	return fmt.Sprintf("%q=%q@%d", key, value, version)
}

func identString(id *pb.StoreIdent) string {
	if id == nil {
		return "none"
	}
	return fmt.Sprintf("cluster %d store %d", id.GetClusterId(), id.GetStoreId())
}

// viewOf reads everything the engine holds through its public methods,
// raft.Storage included.
func viewOf(t tester, e *Engine) engineView {
	t.Helper()
	v := engineView{Ident: identString(e.Ident())}
	for _, id := range e.RegionIDs() {
		r := e.Region(id)
		first, err := r.FirstIndex()
		check(t, err)
		last, err := r.LastIndex()
		check(t, err)
		tt, err := r.Term(first - 1)
		check(t, err)
		hs, cs, err := r.InitialState()
		check(t, err)
		rv := regionView{
			ID: id, Meta: metaString(r.Meta()), State: r.State(), Applied: r.Applied(),
			Trunc: first - 1, TruncTerm: tt,
			Hard: [3]uint64{hs.GetTerm(), hs.GetVote(), hs.GetCommit()},
			Conf: confString(cs),
		}
		ents, err := r.Entries(first, last+1, math.MaxUint64)
		check(t, err)
		if uint64(len(ents)) != last+1-first {
			t.Fatalf("region %d: Entries(%d,%d) gave %d entries", id, first, last+1, len(ents))
		}
		for i, en := range ents {
			if en.GetIndex() != first+uint64(i) {
				t.Fatalf("region %d: entry %d has index %d", id, first+uint64(i), en.GetIndex())
			}
			if term, err := r.Term(en.GetIndex()); err != nil || term != en.GetTerm() {
				t.Fatalf("region %d: Term(%d) = %d, %v; entry says %d", id, en.GetIndex(), term, err, en.GetTerm())
			}
			rv.Entries = append(rv.Entries, entryString(en))
		}
		r.Data().Ascend(func(it kv.Item) bool {
			rv.Keys = append(rv.Keys, kvString(it.Key, it.Value, it.Version))
			return true
		})
		v.Regions = append(v.Regions, rv)
	}
	return v
}

func sameView(t tester, what string, got, want engineView) {
	t.Helper()
	if g, w := got.String(), want.String(); g != w {
		t.Fatalf("%s: state differs\n---- got\n%s---- want\n%s", what, g, w)
	}
}

// ---- files

func listDir(t tester, fs vfs.FS) []string {
	t.Helper()
	names, err := fs.List(testDir)
	check(t, err)
	slices.Sort(names)
	return names
}

func readFileT(t tester, fs vfs.FS, name string) []byte {
	t.Helper()
	f, err := fs.Open(fs.PathJoin(testDir, name))
	check(t, err)
	defer f.Close()
	data, err := io.ReadAll(f)
	check(t, err)
	return data
}

// rewriteFile replaces a file's contents (synced), for corruption tests.
func rewriteFile(t tester, fs vfs.FS, name string, data []byte) {
	t.Helper()
	f, err := fs.Create(fs.PathJoin(testDir, name), vfs.WriteCategoryUnspecified)
	check(t, err)
	_, err = f.Write(bytes.Clone(data))
	check(t, err)
	check(t, f.Sync())
	check(t, f.Close())
}

// onlyFile returns the single file of dir whose name starts with prefix.
func onlyFile(t tester, fs vfs.FS, prefix string) string {
	t.Helper()
	var found []string
	for _, n := range listDir(t, fs) {
		if strings.HasPrefix(n, prefix) {
			found = append(found, n)
		}
	}
	if len(found) != 1 {
		t.Fatalf("files %q: %v, want exactly one", prefix, found)
	}
	return found[0]
}
