package sim

import (
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/multiraft/multiraft/checker"
	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/pd"
)

// startPD creates PD with the initial layout and starts its ticks. It
// returns false, with a violation, when PD refuses the layout.
func (w *World) startPD() bool {
	var split [][]byte
	for _, k := range w.cfg.SplitKeys {
		split = append(split, []byte(k))
	}
	cfg := w.cfg.PD
	cfg.ID = PDNode
	cfg.Layout = pd.LayoutFromSplitKeys(split, w.cfg.Replicas, w.storeIDs())
	cfg.HeartbeatInterval = w.cfg.PDHeartbeat
	var disk vfs.FS
	if w.cfg.PDDisk {
		disk = vfs.NewMem()
	}
	p, err := pd.New(w.env(PDNode, disk, "", w.rs.node.Fork()), cfg)
	if err != nil {
		w.violations = append(w.violations, fmt.Sprintf("PD refused the layout: %v", err))
		return false
	}
	w.pd = p
	p.SetHooks(pd.Hooks{Operator: w.onOperator})
	for _, r := range p.Regions() {
		w.metrics.initialRegion(r.GetId())
		w.noteRegion(0, r) // the layout's peers are bootstrapped with data
	}
	w.schedulePDTick()
	return true
}

func (w *World) schedulePDTick() {
	w.k.after(100*time.Millisecond, "", func() {
		w.pd.Tick()
		w.observePD()
		w.schedulePDTick()
	})
}

// pdWatch is what the world remembers of PD's view of the regions, to
// check each change of it as it happens.
type pdWatch struct {
	epochs     checker.EpochMonitor
	versions   map[uint64]*pb.Epoch // region id -> epoch at the last change
	registered map[uint64]bool      // every region PD has shown
	gen        uint64               // PD's view generation at the last look
	seenGen    bool                 // whether gen has been read
}

func newPDWatch() pdWatch {
	return pdWatch{versions: map[uint64]*pb.Epoch{}, registered: map[uint64]bool{}}
}

// changed reports whether regions differ, in ids or epochs, from the view
// of the last change.
func (pw *pdWatch) changed(regions []*pb.Region) bool {
	if len(regions) != len(pw.versions) {
		return true
	}
	for _, r := range regions {
		if e, ok := pw.versions[r.GetId()]; !ok || !e.Equal(r.GetEpoch()) {
			return true
		}
	}
	return false
}

// remember makes regions the view of the last change.
func (pw *pdWatch) remember(regions []*pb.Region) {
	clear(pw.versions)
	for _, r := range regions {
		pw.versions[r.GetId()] = r.GetEpoch()
	}
}

// observePD checks that PD's epochs never go back and its view never shows
// a gap or an overlap, and notes (and times) the regions it registers.
func (w *World) observePD() {
	gen := w.pd.ViewGeneration()
	if w.pdWatch.seenGen && gen == w.pdWatch.gen {
		return
	}
	w.pdWatch.gen, w.pdWatch.seenGen = gen, true
	regions := w.pd.Regions()
	if !w.pdWatch.changed(regions) {
		return
	}
	var views []checker.RegionView
	for i, r := range regions {
		views = append(views, viewOf("pd", r, nil))
		if err := w.pdWatch.epochs.Observe("pd", r.GetId(), r.GetEpoch().GetConfVer(), r.GetEpoch().GetVersion()); err != nil {
			w.violate(err.Error())
		}
		if w.pdWatch.registered[r.GetId()] {
			continue
		}
		w.pdWatch.registered[r.GetId()] = true
		var left *pb.Region
		if i > 0 {
			left = regions[i-1]
		}
		w.metrics.pdRegistered(r, left, w.k.now)
		w.k.note("pd registered region %d [%q, %q)", r.GetId(), r.GetStartKey(), r.GetEndKey())
	}
	if err := checker.CheckCoverage("pd", views); err != nil {
		w.violate(err.Error())
	}
	w.pdWatch.remember(regions)
}

// onOperator notes every operator event in the trace and feeds the move
// metrics.
func (w *World) onOperator(e pd.OperatorEvent) {
	op := e.Op
	w.k.note("pd operator %d (%v region %d, store %d -> %d): %v %s", op.ID, op.Kind, op.Region, op.From, op.To, e.Event, e.Reason)
	w.metrics.operator(e, w.k.now)
}
