package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/multiraft/multiraft/server"
	"github.com/multiraft/multiraft/server/rpcpb"
)

func runCluster(args []string, stdout, stderr io.Writer) int {
	return exitCode("cluster", clusterMain(args, stdout, stderr), stderr)
}

// child is one process of the cluster.
type child struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan error
}

func clusterMain(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("cluster", "", "Starts a local cluster on 127.0.0.1: PD and --stores stores, each its own process\n(children of this one), data and logs under --data. Ctrl-C (SIGINT) or SIGTERM\nstops them all cleanly; starting again with the same --data recovers the cluster.", stderr)
	n := fs.Int("stores", 3, "number of stores")
	replicas := fs.Int("replicas", 3, "replicas per region (at most --stores)")
	data := fs.String("data", "cluster-data", "data directory: pd/, store1/, ... and their logs")
	pdPort := fs.Int("pd-port", 2379, "PD's port (0: any free port); its HTTP endpoints are on the next port")
	storePort := fs.Int("store-port", 20160, "first store's port; store i listens on port+i-1, its HTTP endpoints on port+100+i-1 (0: any free ports)")
	splitKeys := fs.String("split-keys", "", "comma-separated keys to cut the initial regions at (first start only)")
	splitThreshold := fs.String("split-threshold", "", "region size in bytes at which a region splits (default: the store's)")
	tick := fs.Duration("tick", 100*time.Millisecond, "raft tick interval of the stores")
	heartbeat := fs.Duration("heartbeat", 2*time.Second, "store heartbeat interval to PD")
	noBalance := fs.Bool("no-balance", false, "PD runs no balancers (manual moves only)")
	logLevel := fs.String("log-level", "info", "log level of the processes")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	if *n < 1 || *replicas < 1 || *replicas > *n {
		return usageErr("--stores %d, --replicas %d: need 1 <= replicas <= stores", *n, *replicas)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*data, 0o755); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	port := func(base, i int) (string, error) {
		if base == 0 {
			return freePort()
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(base+i))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return "", fmt.Errorf("port %d is in use (another cluster running? pick other ports with --pd-port/--store-port, or 0 for any): %w", base+i, err)
		}
		l.Close()
		return addr, nil
	}
	pdAddr, err := port(*pdPort, 0)
	if err != nil {
		return err
	}
	pdHTTP, err := port(*pdPort, 1)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var children []*child
	defer func() { stopAll(children, stderr) }()
	start := func(name string, args ...string) (*child, error) {
		logPath := filepath.Join(*data, name+".log")
		f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(self, args...)
		cmd.Stdout, cmd.Stderr = f, f
		if err := cmd.Start(); err != nil {
			f.Close()
			return nil, fmt.Errorf("start %s: %w", name, err)
		}
		c := &child{name: name, cmd: cmd, log: logPath, done: make(chan error, 1)}
		go func() { c.done <- cmd.Wait(); f.Close() }()
		children = append(children, c)
		return c, nil
	}
	pdArgs := []string{"pd", "--addr", pdAddr, "--http", pdHTTP, "--data", filepath.Join(*data, "pd"),
		"--stores", strconv.Itoa(*n), "--replicas", strconv.Itoa(*replicas), "--split-keys", *splitKeys,
		"--heartbeat", heartbeat.String(), "--log-level", *logLevel}
	if *noBalance {
		pdArgs = append(pdArgs, "--no-balance")
	}
	if _, err := start("pd", pdArgs...); err != nil {
		return err
	}
	if err := waitPD(ctx, pdAddr, children); err != nil {
		return err
	}
	storeAddrs := make([]string, *n)
	for i := 1; i <= *n; i++ {
		addr, err := port(*storePort, i-1)
		if err != nil {
			return err
		}
		httpAddr, err := port(*storePort, 100+i-1)
		if err != nil {
			return err
		}
		args := []string{"store", "--id", strconv.Itoa(i), "--addr", addr, "--http", httpAddr, "--pd", pdAddr,
			"--data", filepath.Join(*data, fmt.Sprintf("store%d", i)), "--tick", tick.String(), "--log-level", *logLevel}
		if *splitThreshold != "" {
			args = append(args, "--split-threshold", *splitThreshold)
		}
		storeAddrs[i-1] = addr + " (HTTP " + httpAddr + ")"
		if _, err := start(fmt.Sprintf("store%d", i), args...); err != nil {
			return err
		}
	}
	clusterID, err := waitReady(ctx, pdAddr, *n, children)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "cluster %d ready: PD %s (HTTP %s), data and logs in %s\n", clusterID, pdAddr, pdHTTP, *data)
	for i, a := range storeAddrs {
		fmt.Fprintf(stdout, "  store %d on %s\n", i+1, a)
	}
	fmt.Fprintf(stdout, "try: multiraft kv --pd %s put hello world\n", pdAddr)
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(stdout, "stopping the cluster")
			err := stopAll(children, stderr)
			children = nil
			return err
		case <-time.After(200 * time.Millisecond):
			for _, c := range children {
				select {
				case err := <-c.done:
					c.done <- err
					return fmt.Errorf("%s exited (%v): %s", c.name, err, lastLine(c.log))
				default:
				}
			}
		}
	}
}

// freePort returns a 127.0.0.1 address with a port free right now.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// exited returns an error naming a child that has exited, or nil.
func exited(children []*child) error {
	for _, c := range children {
		select {
		case err := <-c.done:
			c.done <- err
			return fmt.Errorf("%s exited (%v): %s", c.name, err, lastLine(c.log))
		default:
		}
	}
	return nil
}

func waitPD(ctx context.Context, addr string, children []*child) error {
	conn, err := server.Dial(addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := exited(children); err != nil {
			return err
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := server.ClusterInfo(cctx, conn)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("PD did not come up: %w", err)
		}
	}
}

// waitReady waits until every store is registered and every region has a
// leader.
func waitReady(ctx context.Context, pdAddr string, stores int, children []*child) (uint64, error) {
	conn, err := server.Dial(pdAddr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	info, err := server.ClusterInfo(ctx, conn)
	if err != nil {
		return 0, err
	}
	p := rpcpb.NewPDClient(conn)
	h := &rpcpb.Header{ClusterId: info.GetClusterId()}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if err := exited(children); err != nil {
			return 0, err
		}
		if ready(ctx, p, h, stores) {
			return info.GetClusterId(), nil
		}
		if time.Now().After(deadline) {
			return 0, errors.New("the cluster did not become ready within 60s (see the logs)")
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func ready(ctx context.Context, p rpcpb.PDClient, h *rpcpb.Header, stores int) bool {
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	st, err := p.ListStores(cctx, &rpcpb.ListStoresRequest{Header: h})
	if err != nil {
		return false
	}
	up := 0
	for _, s := range st.GetStores() {
		if s.GetRegistered() && s.GetState() == "up" {
			up++
		}
	}
	if up < stores {
		return false
	}
	rs, err := p.ListRegions(cctx, &rpcpb.ListRegionsRequest{Header: h})
	if err != nil {
		return false
	}
	for _, r := range rs.GetRegions() {
		if r.GetLeader() == nil {
			return false
		}
	}
	return true
}

// stopAll sends SIGTERM to every child, stores first, and waits; a child
// still running after 10s is killed.
func stopAll(children []*child, stderr io.Writer) error {
	var firstErr error
	for i := len(children) - 1; i >= 0; i-- {
		c := children[i]
		select {
		case err := <-c.done:
			c.done <- err
			continue
		default:
		}
		c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-c.done:
			c.done <- err
			if err != nil && firstErr == nil {
				firstErr = fmt.Errorf("%s: %v", c.name, err)
			}
		case <-time.After(10 * time.Second):
			fmt.Fprintf(stderr, "multiraft cluster: %s did not stop in 10s; killing it\n", c.name)
			c.cmd.Process.Kill()
			<-c.done
		}
	}
	return firstErr
}

// lastLine is the last non-empty line of a log file, for error messages.
func lastLine(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "(no log)"
	}
	defer f.Close()
	last := "(empty log)"
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if t := sc.Text(); t != "" {
			last = t
		}
	}
	return last + " (log: " + path + ")"
}
