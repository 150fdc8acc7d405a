package pd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	iofs "io/fs"
	"log/slog"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/protobuf/proto"

	"github.com/multiraft/multiraft/core"
	"github.com/multiraft/multiraft/core/pb"
)

// Durability. A PD given a disk (Env.FS non-nil) keeps its state in one
// file, Env.Dir/pd-state, replaced atomically (written to a temporary file,
// synced, renamed, directory synced) at the end of every Receive or Tick
// that changed it, before any reply of that Receive leaves: an AskSplit's
// ids, a raised epoch bound or a new operator are durable before anyone
// hears of them. What is kept: the id allocator's high-water mark, the
// stores (address, joined, bootstrapped, decommission state), the initial
// regions, the routing view (published and pending states, without leaders
// or sizes), the epoch bounds and the running operators. Leaders, sizes,
// store liveness and peer health come back with the heartbeats.
//
// Ids are handed out in batches: the file records a high-water mark
// idBatch above the allocator, raised (and made durable) only when the
// allocator reaches it, so most allocations write nothing of their own. A
// restarted PD allocates from the mark, so no id is ever handed out twice,
// at the price of a gap. A PD without a disk (the simulator's) keeps all of
// this in memory, as before.

const (
	stateFile    = "pd-state"
	stateMagic   = "MRPD"
	stateVersion = 1
	idBatch      = 1000
)

// ErrCorruptState: PD's state file fails its checksum or does not parse.
var ErrCorruptState = errors.New("pd: corrupt state file")

// Open recovers PD from Env.FS/Env.Dir when a state file is there (the
// layout in cfg is then ignored: the state holds the cluster as it is), or
// builds a new PD from cfg.Layout and makes it durable. With a nil Env.FS
// it is New.
func Open(env core.Env, cfg Config) (*PD, error) {
	if env.FS == nil {
		return New(env, cfg)
	}
	st, err := readState(env.FS, env.Dir)
	if err != nil {
		return nil, err
	}
	if st == nil {
		p, err := New(env, cfg)
		if err != nil {
			return nil, err
		}
		if err := p.env.FS.MkdirAll(env.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("pd: create %s: %w", env.Dir, err)
		}
		// The directory and its parents may be new: their entries must be
		// durable before any state in them is (the state file's own
		// directory sync covers only the file's entry).
		if err := syncDirChain(p.env.FS, env.Dir); err != nil {
			return nil, err
		}
		if err := p.save(); err != nil {
			return nil, err
		}
		return p, nil
	}
	return restore(env, cfg, st)
}

// Err is the error that stopped PD (its state could not be made durable),
// or nil. A stopped PD ignores everything it receives: its driver should
// stop it and start it again from disk.
func (p *PD) Err() error { return p.failed }

// Recovered reports whether this PD was restored from its state file.
func (p *PD) Recovered() bool { return p.recovered }

func readState(fs vfs.FS, dir string) (*pb.PDState, error) {
	name := fs.PathJoin(dir, stateFile)
	f, err := fs.Open(name)
	if errors.Is(err, iofs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pd: open %s: %w", name, err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("pd: read %s: %w", name, err)
	}
	if len(data) < 8 || string(data[:4]) != stateMagic {
		return nil, fmt.Errorf("%w: %s has no PD state header", ErrCorruptState, name)
	}
	payload := data[8:]
	if crc32.Checksum(payload, crc32.MakeTable(crc32.Castagnoli)) != binary.LittleEndian.Uint32(data[4:8]) {
		return nil, fmt.Errorf("%w: %s fails its checksum", ErrCorruptState, name)
	}
	st := &pb.PDState{}
	if err := proto.Unmarshal(payload, st); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorruptState, name, err)
	}
	if st.GetVersion() != stateVersion {
		return nil, fmt.Errorf("%w: %s has format version %d, this PD reads %d", ErrCorruptState, name, st.GetVersion(), stateVersion)
	}
	return st, nil
}

// state is the durable part of PD, deterministic for equal states.
func (p *PD) durableState() *pb.PDState {
	st := &pb.PDState{
		Version:        stateVersion,
		PdId:           p.id,
		IdHighWater:    p.idHigh,
		Replicas:       uint32(p.set.replicas),
		LastOperatorId: p.nextOpID,
	}
	for _, id := range p.storeIDs() {
		s := p.stores[id]
		st.Stores = append(st.Stores, &pb.PDStore{Id: id, Address: s.info.Address, Registered: s.registered,
			Joined: s.joined, Offline: s.offline, Tombstone: s.tombstone, Bootstrapped: s.bootstrapped})
	}
	st.Initial = p.initial
	for _, e := range p.view.all() {
		st.Published = append(st.Published, e.region)
	}
	for _, e := range p.view.pendingAll() {
		st.Pending = append(st.Pending, e.region)
	}
	ids := make([]uint64, 0, len(p.bounds))
	for id := range p.bounds {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		b := p.bounds[id]
		st.Bounds = append(st.Bounds, &pb.PDBound{RegionId: id, Version: b.version, ConfVer: b.confVer})
	}
	for _, op := range p.Operators() {
		o := p.ops[op.Region]
		po := &pb.PDOperator{Id: o.id, Kind: uint32(o.kind), Origin: o.origin, Region: o.region, From: o.from, To: o.to,
			Cur: uint32(o.cur), StartUnixNano: o.start.UnixNano(), DeadlineUnixNano: o.deadline.UnixNano()}
		for _, s := range o.steps {
			po.Steps = append(po.Steps, &pb.PDOperatorStep{Kind: uint32(s.kind), Peer: s.peer, Demote: s.demote, To: s.to, Away: s.away})
		}
		st.Operators = append(st.Operators, po)
	}
	return st
}

// save writes the state if it changed since the last save.
// touch notes a change to PD's durable state (durableState): save writes
// the state again only after one. Every change must call it;
// verifySavesSkipped, set by the package's tests, checks that none is missed.
func (p *PD) touch() { p.stateGen++ }

// verifySavesSkipped makes save encode the state even when nothing was
// touched, and panic if it differs from the last one saved (tests).
var verifySavesSkipped = false

// VerifyStateWrites turns on (or off) the check that no change to PD's
// durable state skips its write; for tests: it encodes the whole state on
// every message.
func VerifyStateWrites(on bool) { verifySavesSkipped = on }

func (p *PD) save() error {
	if p.env.FS == nil || p.failed != nil {
		return p.failed
	}
	gen := p.stateGen + p.view.gen
	if p.saved != nil && gen == p.savedGen && !verifySavesSkipped {
		return nil // nothing durable changed: region heartbeats, mostly
	}
	payload, err := proto.MarshalOptions{Deterministic: true}.Marshal(p.durableState())
	if err != nil {
		p.failed = fmt.Errorf("pd: encode state: %w", err)
		return p.failed
	}
	if bytes.Equal(payload, p.saved) {
		p.savedGen = gen
		return nil
	}
	if verifySavesSkipped && p.saved != nil && gen == p.savedGen {
		panic("pd: durable state changed without touch()")
	}
	if err := writeState(p.env.FS, p.env.Dir, payload); err != nil {
		p.failed = err
		p.log.Error("pd: cannot make its state durable; stopped", "err", err)
		return err
	}
	p.saved = payload
	p.savedGen = gen
	p.stats.StateWrites++
	return nil
}

func writeState(fs vfs.FS, dir string, payload []byte) error {
	buf := make([]byte, 8+len(payload))
	copy(buf, stateMagic)
	binary.LittleEndian.PutUint32(buf[4:], crc32.Checksum(payload, crc32.MakeTable(crc32.Castagnoli)))
	copy(buf[8:], payload)
	name := fs.PathJoin(dir, stateFile)
	tmp := name + ".tmp"
	f, err := fs.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("pd: create %s: %w", tmp, err)
	}
	if _, err := f.Write(buf); err != nil {
		f.Close()
		return fmt.Errorf("pd: write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("pd: sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("pd: close %s: %w", tmp, err)
	}
	if err := fs.Rename(tmp, name); err != nil {
		return fmt.Errorf("pd: rename %s: %w", tmp, err)
	}
	d, err := fs.OpenDir(dir)
	if err != nil {
		return fmt.Errorf("pd: open dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("pd: sync dir %s: %w", dir, err)
	}
	return nil
}

// syncDirChain syncs dir and every directory above it (up to "/", or to
// "." for a relative path).
func syncDirChain(fs vfs.FS, dir string) error {
	for {
		d, err := fs.OpenDir(dir)
		if err != nil {
			return fmt.Errorf("pd: open dir %s: %w", dir, err)
		}
		err = d.Sync()
		d.Close()
		if err != nil {
			return fmt.Errorf("pd: sync dir %s: %w", dir, err)
		}
		parent := fs.PathDir(dir)
		if parent == dir {
			return nil
		}
		dir = parent
	}
}

// restore rebuilds PD from its state. cfg supplies the tunables; its
// layout is not used, except that cfg.ID must be the recorded PD id.
func restore(env core.Env, cfg Config, st *pb.PDState) (*PD, error) {
	if cfg.ID != st.GetPdId() {
		return nil, fmt.Errorf("pd: the state in %s belongs to PD id %d, not %d", env.Dir, st.GetPdId(), cfg.ID)
	}
	cfg.Layout.Replicas = int(st.GetReplicas())
	set, err := settingsOf(cfg)
	if err != nil {
		return nil, err
	}
	log := env.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := env.Clock.Now()
	p := &PD{
		env:       env,
		log:       log.With("node", "pd", "pd_id", cfg.ID),
		id:        cfg.ID,
		set:       set,
		started:   now,
		nextID:    st.GetIdHighWater(),
		idHigh:    st.GetIdHighWater(),
		bounds:    map[uint64]bound{},
		stores:    map[uint64]*store{},
		view:      newView(),
		health:    map[uint64]*health{},
		ops:       map[uint64]*operator{},
		nextOpID:  st.GetLastOperatorId(),
		recovered: true,
	}
	for _, s := range st.GetStores() {
		if s.GetId() == 0 || p.stores[s.GetId()] != nil {
			return nil, fmt.Errorf("%w: store id %d is 0 or listed twice", ErrCorruptState, s.GetId())
		}
		p.stores[s.GetId()] = &store{info: StoreInfo{ID: s.GetId(), Address: s.GetAddress()},
			registered: s.GetRegistered(), joined: s.GetJoined(), offline: s.GetOffline(), tombstone: s.GetTombstone(),
			bootstrapped: s.GetBootstrapped()}
	}
	p.initial = st.GetInitial()
	for _, r := range st.GetPublished() {
		if why := checkRegion(r); why != "" {
			return nil, fmt.Errorf("%w: published region: %s", ErrCorruptState, why)
		}
		p.view.publish(&entry{region: r, seen: now})
	}
	for _, r := range st.GetPending() {
		if why := checkRegion(r); why != "" {
			return nil, fmt.Errorf("%w: pending region: %s", ErrCorruptState, why)
		}
		p.view.setPending(&entry{region: r, seen: now})
	}
	for _, b := range st.GetBounds() {
		p.bounds[b.GetRegionId()] = bound{version: b.GetVersion(), confVer: b.GetConfVer()}
	}
	for _, po := range st.GetOperators() {
		if po.GetKind() >= NumOpKinds || len(po.GetSteps()) == 0 || int(po.GetCur()) >= len(po.GetSteps()) {
			return nil, fmt.Errorf("%w: operator %d", ErrCorruptState, po.GetId())
		}
		o := &operator{id: po.GetId(), kind: OpKind(po.GetKind()), origin: po.GetOrigin(), region: po.GetRegion(),
			from: po.GetFrom(), to: po.GetTo(), cur: int(po.GetCur()),
			start: time.Unix(0, po.GetStartUnixNano()), deadline: time.Unix(0, po.GetDeadlineUnixNano())}
		for _, s := range po.GetSteps() {
			o.steps = append(o.steps, step{kind: stepKind(s.GetKind()), peer: s.GetPeer(), demote: s.GetDemote(), to: s.GetTo(), away: s.GetAway()})
		}
		p.ops[o.region] = o
	}
	if err := checkTiling(p.view.all()); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptState, err)
	}
	p.saved, _ = proto.MarshalOptions{Deterministic: true}.Marshal(p.durableState())
	p.log.Info("pd: recovered", "dir", env.Dir, "stores", len(p.stores), "regions", len(st.GetPublished()),
		"pending", len(st.GetPending()), "operators", len(p.ops), "next_id", p.nextID)
	return p, nil
}

// checkTiling returns why the published entries (sorted by start key) do
// not tile the keyspace, or nil.
func checkTiling(all []*entry) error {
	var at []byte
	for i, e := range all {
		if !bytes.Equal(e.start(), at) || (i > 0 && len(at) == 0) {
			return fmt.Errorf("the routing view has a gap or an overlap at %s", e.region.Describe())
		}
		at = e.end()
	}
	if len(all) == 0 || len(at) != 0 {
		return errors.New("the routing view does not reach +inf")
	}
	return nil
}
