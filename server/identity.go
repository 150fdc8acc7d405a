package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// identityFile names the file in every data directory that says whose it
// is: the cluster, and the role (pd or store) with the store id. A process
// refuses a directory of another cluster, role or store.
const identityFile = "IDENTITY"

type identity struct {
	ClusterID uint64 `json:"cluster_id"`
	Role      string `json:"role"` // "pd" or "store"
	StoreID   uint64 `json:"store_id,omitempty"`
}

// loadIdentity reads dir's identity; nil when there is none (a new
// directory).
func loadIdentity(dir string) (*identity, error) {
	data, err := os.ReadFile(filepath.Join(dir, identityFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the identity of data directory %s: %w", dir, err)
	}
	id := &identity{}
	if err := json.Unmarshal(data, id); err != nil || id.ClusterID == 0 {
		return nil, fmt.Errorf("data directory %s: %s is not a multiraft identity file", dir, identityFile)
	}
	return id, nil
}

// claim makes dir belong to want, or says why it cannot: it already
// belongs to another cluster, role or store.
func claim(dir string, want identity) error {
	have, err := loadIdentity(dir)
	if err != nil {
		return err
	}
	if have != nil {
		switch {
		case have.ClusterID != want.ClusterID:
			return fmt.Errorf("data directory %s belongs to cluster %d, not to cluster %d: use another directory, or the PD of cluster %d",
				dir, have.ClusterID, want.ClusterID, have.ClusterID)
		case have.Role != want.Role:
			return fmt.Errorf("data directory %s is a %s's, not a %s's", dir, have.Role, want.Role)
		case have.StoreID != want.StoreID:
			return fmt.Errorf("data directory %s belongs to store %d, not to store %d", dir, have.StoreID, want.StoreID)
		}
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create data directory %s: %w", dir, err)
	}
	data, _ := json.Marshal(want)
	tmp := filepath.Join(dir, identityFile+".tmp")
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("data directory %s: %w", dir, err)
	}
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("data directory %s: %w", dir, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("data directory %s: %w", dir, err)
	}
	f.Close()
	if err := os.Rename(tmp, filepath.Join(dir, identityFile)); err != nil {
		return fmt.Errorf("data directory %s: %w", dir, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("data directory %s: %w", dir, err)
	}
	defer d.Close()
	return d.Sync()
}
