package server

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/multiraft/multiraft/core/pd"
)

// pdMetrics are PD's Prometheus metrics, read from the core PD on its loop
// at scrape time.
type pdMetrics struct{ reg *prometheus.Registry }

func newPDMetrics(s *PD) *pdMetrics {
	m := &pdMetrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(&pdCollector{s: s}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is PD's metrics registry (served on /metrics).
func (s *PD) Registry() *prometheus.Registry { return s.metrics.reg }

type pdCollector struct{ s *PD }

var (
	descPDRegions      = prometheus.NewDesc("multiraft_pd_regions", "Regions in PD's routing view.", nil, nil)
	descPDStores       = prometheus.NewDesc("multiraft_pd_stores", "Stores PD knows, by state.", []string{"state"}, nil)
	descPDStoreRegions = prometheus.NewDesc("multiraft_pd_store_regions", "Replicas per store in PD's view.", []string{"store"}, nil)
	descPDStoreLeaders = prometheus.NewDesc("multiraft_pd_store_leaders", "Leaders per store in PD's view.", []string{"store"}, nil)
	descPDOperators    = prometheus.NewDesc("multiraft_pd_operators_running", "Operators running.", nil, nil)
	descPDCounters     = map[string]*prometheus.Desc{}
	pdCounters         = []struct {
		name, help string
		get        func(pd.Stats) uint64
	}{
		{"region_heartbeats_total", "Region heartbeats received.", func(s pd.Stats) uint64 { return s.RegionHeartbeats }},
		{"store_heartbeats_total", "Store heartbeats received.", func(s pd.Stats) uint64 { return s.StoreHeartbeats }},
		{"ask_splits_total", "AskSplit requests.", func(s pd.Stats) uint64 { return s.AskSplits }},
		{"view_changes_total", "Routing view changes (splits published).", func(s pd.Stats) uint64 { return s.ViewChanges }},
		{"get_regions_total", "GetRegion lookups.", func(s pd.Stats) uint64 { return s.GetRegions }},
		{"orders_total", "Region orders sent.", func(s pd.Stats) uint64 { return s.Orders }},
		{"quorum_holds_total", "Operator steps not ordered because they would leave no reachable quorum.", func(s pd.Stats) uint64 { return s.QuorumHolds }},
		{"state_writes_total", "Durable state writes.", func(s pd.Stats) uint64 { return s.StateWrites }},
		{"malformed_total", "Malformed messages.", func(s pd.Stats) uint64 { return s.Malformed }},
		{"rejected_heartbeats_total", "Region heartbeats rejected as invalid.", func(s pd.Stats) uint64 { return s.RejectedHeartbeats }},
	}
)

func init() {
	for _, c := range pdCounters {
		descPDCounters[c.name] = prometheus.NewDesc("multiraft_pd_"+c.name, c.help, nil, nil)
	}
}

func (c *pdCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range descPDCounters {
		ch <- d
	}
	ch <- descPDRegions
	ch <- descPDStores
	ch <- descPDStoreRegions
	ch <- descPDStoreLeaders
	ch <- descPDOperators
}

func (c *pdCollector) Collect(ch chan<- prometheus.Metric) {
	var stats pd.Stats
	var stores []pd.StoreInfo
	var regions, ops int
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := c.s.do(ctx, func() {
		stats, stores, regions, ops = c.s.core.Stats(), c.s.core.Stores(), len(c.s.core.Regions()), len(c.s.core.Operators())
	}); err != nil {
		return
	}
	for _, pc := range pdCounters {
		ch <- prometheus.MustNewConstMetric(descPDCounters[pc.name], prometheus.CounterValue, float64(pc.get(stats)))
	}
	ch <- prometheus.MustNewConstMetric(descPDRegions, prometheus.GaugeValue, float64(regions))
	ch <- prometheus.MustNewConstMetric(descPDOperators, prometheus.GaugeValue, float64(ops))
	byState := map[string]int{}
	for _, st := range stores {
		byState[st.State.String()]++
		id := uitoa(st.ID)
		ch <- prometheus.MustNewConstMetric(descPDStoreRegions, prometheus.GaugeValue, float64(st.Regions), id)
		ch <- prometheus.MustNewConstMetric(descPDStoreLeaders, prometheus.GaugeValue, float64(st.Leaders), id)
	}
	for state, n := range byState {
		ch <- prometheus.MustNewConstMetric(descPDStores, prometheus.GaugeValue, float64(n), state)
	}
}
