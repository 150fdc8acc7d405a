package server

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/multiraft/multiraft/core"
	"github.com/multiraft/multiraft/core/pd"
)

// openPD claims cfg.DataDir for the cluster and opens the core PD on it:
// recovered from its state file, or new from the layout in cfg.
func openPD(cfg PDConfig, env core.Env) (*pd.PD, uint64, error) {
	if cfg.DataDir == "" {
		return nil, 0, fmt.Errorf("pd: no data directory")
	}
	have, err := loadIdentity(cfg.DataDir)
	if err != nil {
		return nil, 0, fmt.Errorf("pd: %w", err)
	}
	clusterID := cfg.ClusterID
	switch {
	case have != nil && clusterID == 0:
		clusterID = have.ClusterID
	case clusterID == 0:
		clusterID = rand.Uint64()>>1 | 1 // never 0
	}
	if err := claim(cfg.DataDir, identity{ClusterID: clusterID, Role: "pd"}); err != nil {
		return nil, 0, fmt.Errorf("pd: %w", err)
	}
	env.FS = vfs.Default
	env.Dir = filepath.Join(cfg.DataDir, "pd")
	pcfg := cfg.PD
	pcfg.ID = PDNodeID
	pcfg.Layout = pd.LayoutFromSplitKeys(cfg.SplitKeys, cfg.Replicas, cfg.Stores)
	p, err := pd.Open(env, pcfg)
	if err != nil {
		return nil, 0, fmt.Errorf("pd: %w", err)
	}
	return p, clusterID, nil
}

// persist stops PD when its core could not make its state durable.
func (s *PD) persist() error { return s.core.Err() }

// replicas is the replica count of the cluster (from the initial regions).
func (s *PD) replicas() int {
	init := s.core.InitialRegions()
	if len(init) == 0 {
		return 0
	}
	return len(init[0].GetPeers())
}
