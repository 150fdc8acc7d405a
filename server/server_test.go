package server_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/multiraft/multiraft/core/raftstore"
	"github.com/multiraft/multiraft/kvclient"
	"github.com/multiraft/multiraft/server"
)

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("MULTIRAFT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func fastRaft() raftstore.Config {
	return raftstore.Config{
		TickInterval:            10 * time.Millisecond,
		RegionHeartbeatInterval: 100 * time.Millisecond,
		StoreHeartbeatInterval:  100 * time.Millisecond,
	}
}

type testCluster struct {
	t      *testing.T
	dir    string
	pd     *server.PD
	stores map[uint64]*server.Store
	addrs  map[uint64]string
}

func startCluster(t *testing.T, splitKeys ...string) *testCluster {
	t.Helper()
	dir := t.TempDir()
	var keys [][]byte
	for _, k := range splitKeys {
		keys = append(keys, []byte(k))
	}
	p, err := server.StartPD(server.PDConfig{Addr: "127.0.0.1:0", DataDir: filepath.Join(dir, "pd"),
		Stores: []uint64{1, 2, 3}, Replicas: 3, SplitKeys: keys, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	c := &testCluster{t: t, dir: dir, pd: p, stores: map[uint64]*server.Store{}, addrs: map[uint64]string{}}
	t.Cleanup(c.close)
	for id := uint64(1); id <= 3; id++ {
		c.startStore(id, "127.0.0.1:0")
	}
	return c
}

func (c *testCluster) startStore(id uint64, addr string) {
	c.t.Helper()
	s, err := server.StartStore(context.Background(), server.StoreConfig{StoreID: id, Addr: addr, PDAddr: c.pd.Addr(),
		DataDir: filepath.Join(c.dir, fmt.Sprintf("store%d", id)), Raft: fastRaft(), Log: testLogger(c.t)})
	if err != nil {
		c.t.Fatal(err)
	}
	c.stores[id] = s
	c.addrs[id] = s.Addr()
}

func (c *testCluster) close() {
	for _, s := range c.stores {
		s.Close()
	}
	c.pd.Close()
}

func TestInProcessCluster(t *testing.T) {
	c := startCluster(t, "m")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kvclient.New(ctx, kvclient.Config{PD: c.pd.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, k := range []string{"a", "z"} {
		v, err := cl.Put(ctx, []byte(k), []byte("v-"+k))
		if err != nil || v != 1 {
			t.Fatalf("put %s: version %d, %v", k, v, err)
		}
	}
	got, err := cl.Get(ctx, []byte("z"))
	if err != nil || !got.Found || string(got.Value) != "v-z" {
		t.Fatalf("get z: %+v %v", got, err)
	}
	kvs, err := cl.Scan(ctx, nil, nil, 0)
	if err != nil || len(kvs) != 2 {
		t.Fatalf("scan: %v %v", kvs, err)
	}
	// Restart a store on the same address: what was acknowledged stays.
	c.stores[1].Close()
	c.startStore(1, c.addrs[1])
	got, err = cl.Get(ctx, []byte("a"))
	if err != nil || !got.Found || string(got.Value) != "v-a" {
		t.Fatalf("get a after restart: %+v %v", got, err)
	}
}

// A store that has bootstrapped cannot start again on an empty data
// directory: PD refuses its hello (its replicas' raft state is gone, and
// re-creating them from the initial layout could lose committed writes),
// and StartStore fails with PD's reason. On its own directory it starts.
func TestStoreOnAnEmptyDataDirectoryIsRefused(t *testing.T) {
	c := startCluster(t, "m")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kvclient.New(ctx, kvclient.Config{PD: c.pd.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.Put(ctx, []byte("a"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // ten store heartbeats: PD knows store 1 bootstrapped
	c.stores[1].Close()
	delete(c.stores, 1)
	dir := filepath.Join(c.dir, "store1")
	saved := dir + ".saved"
	if err := os.Rename(dir, saved); err != nil {
		t.Fatal(err)
	}
	_, err = server.StartStore(context.Background(), server.StoreConfig{StoreID: 1, Addr: "127.0.0.1:0", PDAddr: c.pd.Addr(),
		DataDir: dir, Raft: fastRaft(), Log: testLogger(t)})
	if err == nil || !strings.Contains(err.Error(), "bootstrapped before") {
		t.Fatalf("store 1 on an empty data directory: %v, want PD's refusal", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(saved, dir); err != nil {
		t.Fatal(err)
	}
	c.startStore(1, c.addrs[1])
	got, err := cl.Get(ctx, []byte("a"))
	if err != nil || !got.Found || string(got.Value) != "1" {
		t.Fatalf("get a: %+v %v", got, err)
	}
}
