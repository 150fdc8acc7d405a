package server

import (
	"context"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/core/raftstore"
)

// storeMetrics are a store's Prometheus metrics, in its own registry (so
// several stores can live in one test process). Counters the core keeps
// (raftstore.Stats) are read on the loop at scrape time; the runtime's own
// (messages, fsync latency) are counted as they happen.
type storeMetrics struct {
	reg         *prometheus.Registry
	roundSecs   prometheus.Histogram
	fsyncSecs   prometheus.Histogram
	recvVec     *prometheus.CounterVec
	sentMsgs    *prometheus.CounterVec
	failedMsgs  *prometheus.CounterVec
	droppedMsgs *prometheus.CounterVec
	refusedReqs *prometheus.CounterVec
	pdErrors    prometheus.Counter
	snapIn      prometheus.Counter
}

func newStoreMetrics(s *Store) *storeMetrics {
	m := &storeMetrics{
		reg: prometheus.NewRegistry(),
		roundSecs: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "multiraft_store_ready_round_seconds",
			Help: "Duration of one ready round (Flush): persist, fsync, send, apply.", Buckets: prometheus.ExponentialBuckets(50e-6, 2, 16)}),
		fsyncSecs: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "multiraft_store_fsync_seconds",
			Help: "Latency of fsync calls of the store's data directory.", Buckets: prometheus.ExponentialBuckets(20e-6, 2, 16)}),
		recvVec: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "multiraft_store_messages_received_total",
			Help: "Envelopes handed to the store, by body."}, []string{"type"}),
		sentMsgs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "multiraft_store_raft_messages_sent_total",
			Help: "Messages sent to other stores, by stream (raft, snapshot)."}, []string{"stream"}),
		failedMsgs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "multiraft_store_raft_messages_failed_total",
			Help: "Messages to other stores lost because the store could not be reached, by stream."}, []string{"stream"}),
		droppedMsgs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "multiraft_store_messages_dropped_total",
			Help: "Messages dropped by the runtime, by reason."}, []string{"reason"}),
		refusedReqs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "multiraft_store_requests_refused_total",
			Help: "Requests or streams refused before reaching the store (bad header, foreign cluster), by service."}, []string{"service"}),
		pdErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "multiraft_store_pd_call_errors_total",
			Help: "Calls to PD that failed."}),
		snapIn: prometheus.NewCounter(prometheus.CounterOpts{Name: "multiraft_store_snapshot_bytes_received_total",
			Help: "Key and value bytes of snapshot chunks received."}),
	}
	m.reg.MustRegister(m.roundSecs, m.fsyncSecs, m.recvVec, m.sentMsgs, m.failedMsgs, m.droppedMsgs, m.refusedReqs,
		m.pdErrors, m.snapIn, &storeCollector{s: s},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is the store's metrics registry (served on /metrics).
func (s *Store) Registry() *prometheus.Registry { return s.metrics.reg }

func (m *storeMetrics) flushed(d time.Duration)   { m.roundSecs.Observe(d.Seconds()) }
func (m *storeMetrics) received(e *pb.Envelope)   { m.recvVec.WithLabelValues(bodyName(e)).Inc() }
func (m *storeMetrics) dropped(reason string)     { m.droppedMsgs.WithLabelValues(reason).Inc() }
func (m *storeMetrics) refused(service string)    { m.refusedReqs.WithLabelValues(service).Inc() }
func (m *storeMetrics) pdError()                  { m.pdErrors.Inc() }
func (m *storeMetrics) sent(stream string, n int) { m.sentMsgs.WithLabelValues(stream).Add(float64(n)) }
func (m *storeMetrics) sendFailed(stream string, n int) {
	m.failedMsgs.WithLabelValues(stream).Add(float64(n))
}
func (m *storeMetrics) snapshotBytesIn(c *pb.SnapshotChunk) {
	n := 0
	for _, p := range c.GetPairs() {
		n += len(p.GetKey()) + len(p.GetValue())
	}
	m.snapIn.Add(float64(n))
}

// storeCollector reads the core store's counters on its loop at scrape
// time.
type storeCollector struct{ s *Store }

var (
	descCounters = map[string]*prometheus.Desc{}
	descRegions  = prometheus.NewDesc("multiraft_store_regions", "Regions with a replica on this store.", nil, nil)
	descLeaders  = prometheus.NewDesc("multiraft_store_leaders", "Regions this store leads.", nil, nil)
	descBytes    = prometheus.NewDesc("multiraft_store_region_bytes", "Keys and values held, all regions.", nil, nil)
	descQuiet    = prometheus.NewDesc("multiraft_store_quiet_regions", "Regions whose peer here is quiet (idle, not ticking).", nil, nil)
	coreCounters = []struct {
		name, help string
		get        func(raftstore.Stats) uint64
	}{
		{"proposals_total", "Proposals made through raft.", func(s raftstore.Stats) uint64 { return s.Proposals }},
		{"writes_applied_total", "Write commands applied.", func(s raftstore.Stats) uint64 { return s.WritesApplied }},
		{"reads_served_total", "Reads served after ReadIndex.", func(s raftstore.Stats) uint64 { return s.ReadsServed }},
		{"ready_rounds_total", "Ready rounds (Flush calls).", func(s raftstore.Stats) uint64 { return s.FlushRounds }},
		{"splits_total", "Splits applied here.", func(s raftstore.Stats) uint64 { return s.Splits }},
		{"snapshot_bytes_sent_total", "Snapshot bytes streamed to other stores.", func(s raftstore.Stats) uint64 { return s.SnapshotBytesSent }},
		{"snapshots_applied_total", "Snapshots applied.", func(s raftstore.Stats) uint64 { return s.SnapshotsApplied }},
		{"malformed_messages_total", "Raft messages dropped as malformed.", func(s raftstore.Stats) uint64 { return s.MalformedMsgs }},
		{"stale_term_messages_dropped_total", "Outgoing raft messages of an older term, dropped.", func(s raftstore.Stats) uint64 { return s.StaleTermMsgsDropped }},
		{"commits_held_total", "Appends that only carried a new commit index, held for the next tick.", func(s raftstore.Stats) uint64 { return s.CommitsHeld }},
		{"held_commits_sent_total", "Held commit-only appends sent at a tick.", func(s raftstore.Stats) uint64 { return s.HeldCommitsSent }},
		{"held_commits_dropped_total", "Held commit-only appends dropped: the peer's term moved on.", func(s raftstore.Stats) uint64 { return s.HeldCommitsDropped }},
		{"not_leader_total", "Requests answered NotLeader.", func(s raftstore.Stats) uint64 { return s.NotLeader }},
		{"epoch_not_match_total", "Requests answered EpochNotMatch.", func(s raftstore.Stats) uint64 { return s.EpochNotMatch }},
		{"invalid_requests_total", "Requests answered InvalidRequest.", func(s raftstore.Stats) uint64 { return s.InvalidRequests }},
		{"region_heartbeats_total", "Region heartbeats sent to PD.", func(s raftstore.Stats) uint64 { return s.RegionHeartbeatsOut }},
		{"quiesced_total", "Times a peer went quiet.", func(s raftstore.Stats) uint64 { return s.Quiesced }},
		{"woken_total", "Times a quiet peer woke.", func(s raftstore.Stats) uint64 { return s.Woken }},
	}
)

func init() {
	for _, c := range coreCounters {
		descCounters[c.name] = prometheus.NewDesc("multiraft_store_"+c.name, c.help, nil, nil)
	}
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range descCounters {
		ch <- d
	}
	ch <- descRegions
	ch <- descLeaders
	ch <- descBytes
	ch <- descQuiet
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	var stats raftstore.Stats
	var regions, leaders, quiet int
	var bytes int64
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := c.s.do(ctx, func(st *raftstore.Store) {
		stats = st.Stats()
		for _, r := range st.Regions() {
			if !r.Initialized {
				continue
			}
			regions++
			bytes += r.Bytes
			if r.IsLeader {
				leaders++
			}
			if r.Quiet {
				quiet++
			}
		}
	}); err != nil {
		return
	}
	for _, cc := range coreCounters {
		ch <- prometheus.MustNewConstMetric(descCounters[cc.name], prometheus.CounterValue, float64(cc.get(stats)))
	}
	ch <- prometheus.MustNewConstMetric(descRegions, prometheus.GaugeValue, float64(regions))
	ch <- prometheus.MustNewConstMetric(descLeaders, prometheus.GaugeValue, float64(leaders))
	ch <- prometheus.MustNewConstMetric(descBytes, prometheus.GaugeValue, float64(bytes))
	ch <- prometheus.MustNewConstMetric(descQuiet, prometheus.GaugeValue, float64(quiet))
}

// timedFS is vfs.Default with every file Sync timed into a histogram.
type timedFS struct {
	vfs.FS
	h prometheus.Histogram
}

func (fs timedFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	if err != nil {
		return nil, err
	}
	return timedFile{File: f, h: fs.h}, nil
}

func (fs timedFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, c, opts...)
	if err != nil {
		return nil, err
	}
	return timedFile{File: f, h: fs.h}, nil
}

type timedFile struct {
	vfs.File
	h prometheus.Histogram
}

func (f timedFile) Sync() error {
	start := time.Now()
	err := f.File.Sync()
	f.h.Observe(time.Since(start).Seconds())
	return err
}
