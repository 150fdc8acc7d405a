package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/multiraft/multiraft/core/raftstore"
	"github.com/multiraft/multiraft/server"
)

func runStore(args []string, stdout, stderr io.Writer) int {
	return exitCode("store", storeMain(args, stdout, stderr), stderr)
}

func storeMain(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("store", "", "Runs a store: it hosts one replica of many regions and serves reads and writes\nof the regions it leads. Stops cleanly on SIGINT or SIGTERM; a restart\nrecovers everything synced in --data.", stderr)
	id := fs.Uint64("id", 0, "store id (required; one of PD's initial stores, or a new id with --join)")
	addr := fs.String("addr", "127.0.0.1:20160", "gRPC listen address")
	advertise := fs.String("advertise", "", "address others reach this store at (default: the listen address)")
	httpAddr := fs.String("http", "", "HTTP address for /metrics and /debug/pprof (empty: none)")
	pdAddr := fs.String("pd", "127.0.0.1:2379", "PD's address")
	data := fs.String("data", "", "data directory (default data/store<ID>)")
	join := fs.Bool("join", false, "join a running cluster (a store not in PD's initial layout)")
	tick := fs.Duration("tick", 100*time.Millisecond, "raft tick interval (election timeout is 10 ticks)")
	splitThreshold := fs.Int64("split-threshold", raftstore.DefaultSplitThreshold, "region size in bytes at which a region splits (0: never)")
	pdTimeout := fs.Duration("pd-timeout", 30*time.Second, "how long to wait for PD at start")
	var lf logFlags
	lf.add(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	if *id == 0 {
		return usageErr("--id is required")
	}
	if *data == "" {
		*data = fmt.Sprintf("data/store%d", *id)
	}
	log, err := lf.logger(stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := server.StartStore(ctx, server.StoreConfig{StoreID: *id, Addr: *addr, AdvertiseAddr: *advertise, PDAddr: *pdAddr,
		DataDir: *data, Join: *join, PDTimeout: *pdTimeout, Log: log,
		Raft: raftstore.Config{TickInterval: *tick, SplitThreshold: *splitThreshold}})
	if err != nil {
		return err
	}
	defer s.Close()
	if *httpAddr != "" {
		h, err := server.StartHTTP(*httpAddr, s.Registry(), nil, log)
		if err != nil {
			return err
		}
		defer h.Close()
	}
	fmt.Fprintf(stdout, "store %d: serving cluster %d on %s\n", *id, s.ClusterID(), s.Addr())
	select {
	case <-ctx.Done():
		log.Info("store: shutting down")
		return nil
	case <-s.Done():
		return s.Err()
	}
}
