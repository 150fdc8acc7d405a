package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/multiraft/multiraft/core/pd"
	"github.com/multiraft/multiraft/server"
)

func runPD(args []string, stdout, stderr io.Writer) int {
	return exitCode("pd", pdMain(args, stdout, stderr), stderr)
}

func pdMain(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("pd", "", "Runs the placement driver: it hands stores their initial regions, tracks them,\nanswers routing lookups and runs moves. Stops cleanly on SIGINT or SIGTERM;\na restart recovers its state from --data.", stderr)
	addr := fs.String("addr", "127.0.0.1:2379", "gRPC listen address")
	httpAddr := fs.String("http", "127.0.0.1:2380", "HTTP address for /metrics, /debug/pprof and /pd/api/v1/{stores,regions,operators} (empty: none)")
	data := fs.String("data", "data/pd", "data directory")
	clusterID := fs.Uint64("cluster-id", 0, "cluster id (0: random at first start, then the one in --data)")
	stores := fs.String("stores", "3", "initial stores: a count (ids 1..N) or a list of ids (first start only)")
	replicas := fs.Int("replicas", 3, "replicas per region (first start only)")
	splitKeys := fs.String("split-keys", "", "comma-separated keys to cut the initial regions at (first start only)")
	heartbeat := fs.Duration("heartbeat", 2*time.Second, "heartbeat interval stores are told to use")
	downTime := fs.Duration("max-store-down-time", 30*time.Minute, "a store silent this long is Down and its replicas are re-created elsewhere")
	noBalance := fs.Bool("no-balance", false, "turn the region and leader balancers off (manual moves only)")
	var lf logFlags
	lf.add(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	log, err := lf.logger(stderr)
	if err != nil {
		return err
	}
	ids, err := parseIDs(*stores)
	if err != nil {
		return err
	}
	p, err := server.StartPD(server.PDConfig{Addr: *addr, DataDir: *data, ClusterID: *clusterID, Stores: ids,
		Replicas: *replicas, SplitKeys: splitList(*splitKeys), Log: log,
		PD: pd.Config{HeartbeatInterval: *heartbeat, MaxStoreDownTime: *downTime,
			DisableBalanceRegion: *noBalance, DisableBalanceLeader: *noBalance}})
	if err != nil {
		return err
	}
	defer p.Close()
	if *httpAddr != "" {
		h, err := server.StartHTTP(*httpAddr, p.Registry(), p.HTTPHandlers(), log)
		if err != nil {
			return err
		}
		defer h.Close()
	}
	fmt.Fprintf(stdout, "pd: serving cluster %d on %s\n", p.ClusterID(), p.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	log.Info("pd: shutting down")
	return nil
}
