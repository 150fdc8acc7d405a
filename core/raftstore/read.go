package raftstore

import (
	"bytes"
	"encoding/binary"

	"go.etcd.io/raft/v3"

	"github.com/multiraft/multiraft/core/buggify"
	"github.com/multiraft/multiraft/core/pb"
)

type readRequest struct {
	client uint64
	req    *pb.KvRequest
}

type readBatch struct {
	ctx        []byte
	reads      []*readRequest
	index      uint64
	indexKnown bool
}

// issueReads starts one ReadIndex for all reads queued since the last round.
func (p *peer) issueReads() {
	if len(p.reads) == 0 {
		return
	}
	if p.s.bug.Fire(buggify.ReadIndexDelay) {
		return // the reads wait for the next tick's round
	}
	reads := p.reads
	p.reads = nil
	// Ask raft, not the role seen at the last Ready: a message stepped since
	// may have deposed this peer, and a follower's ReadIndex with no known
	// leader is dropped without an answer.
	if p.rn.BasicStatus().RaftState != raft.StateLeader {
		p.s.bug.Reach(buggify.DeposedLeaderRead)
		for _, r := range reads {
			p.s.stats.NotLeader++
			p.replyErr(r.client, r.req.RequestId, p.notLeaderErr())
		}
		return
	}
	p.s.nextReadCtx++
	ctx := make([]byte, 16)
	binary.BigEndian.PutUint64(ctx, p.s.incarnation)
	binary.BigEndian.PutUint64(ctx[8:], p.s.nextReadCtx)
	p.s.stats.ReadIndexRequests++
	p.batches = append(p.batches, &readBatch{ctx: ctx, reads: reads})
	p.rn.ReadIndex(ctx)
}

// serveReads answers reads whose read index has been applied.
func (p *peer) serveReads() {
	if len(p.batches) == 0 {
		return
	}
	applied := p.region.Applied()
	kept := p.batches[:0]
	for _, b := range p.batches {
		if !b.indexKnown || b.index > applied {
			kept = append(kept, b)
			continue
		}
		for _, r := range b.reads {
			p.serveRead(r)
		}
	}
	p.batches = kept
}

// serveRead answers one read from local state, re-checking that the region
// still owns the key: a split applied since the request arrived moves keys
// away.
func (p *peer) serveRead(r *readRequest) {
	meta := p.region.Meta()
	req := r.req
	if req.GetHeader().GetRegionEpoch().GetVersion() != meta.GetEpoch().GetVersion() {
		p.s.stats.EpochNotMatch++
		p.s.bug.Reach(buggify.StaleEpochRequest)
		p.replyErr(r.client, req.RequestId, p.s.epochNotMatchErr(p, req.Key()))
		return
	}
	p.s.stats.ReadsServed++
	resp := &pb.KvResponse{RequestId: req.RequestId}
	d := p.region.Data()
	switch op := req.Op.(type) {
	case *pb.KvRequest_Get:
		it, ok := d.Get(op.Get.Key)
		g := &pb.GetResponse{Found: ok}
		if ok {
			g.Value, g.Version = it.Value, it.Version
		}
		resp.Result = &pb.KvResponse_Get{Get: g}
	case *pb.KvRequest_Scan:
		start, end := clampScan(op.Scan, meta)
		limit := p.s.cfg.MaxScanPairs
		if l := int(op.Scan.Limit); l > 0 && l < limit {
			limit = l
		}
		sr := &pb.ScanResponse{}
		size := 0
		d.AscendFrom(start, func(it kvItem) bool {
			if len(end) > 0 && bytes.Compare(it.Key, end) >= 0 {
				return false
			}
			if len(sr.Pairs) == limit || (len(sr.Pairs) > 0 && size+len(it.Key)+len(it.Value) > p.s.cfg.MaxScanBytes) {
				// Cut short by the store's bound, not the client's limit:
				// more keys follow.
				sr.More = len(sr.Pairs) < int(op.Scan.Limit) || op.Scan.Limit == 0
				return false
			}
			sr.Pairs = append(sr.Pairs, &pb.KvPair{Key: it.Key, Value: it.Value, Version: it.Version})
			size += len(it.Key) + len(it.Value)
			return true
		})
		resp.Result = &pb.KvResponse_Scan{Scan: sr}
	}
	p.s.sendKv(r.client, resp)
}

// clampScan intersects a scan's range with the region's.
func clampScan(sc *pb.ScanRequest, meta *pb.Region) (start, end []byte) {
	start = sc.GetStartKey()
	if bytes.Compare(start, meta.GetStartKey()) < 0 {
		start = meta.GetStartKey()
	}
	end = sc.GetEndKey()
	if len(end) == 0 || (len(meta.GetEndKey()) > 0 && bytes.Compare(meta.GetEndKey(), end) < 0) {
		end = meta.GetEndKey()
	}
	return start, end
}
