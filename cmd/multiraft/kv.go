package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/kvclient"
	"github.com/multiraft/multiraft/server"
	"github.com/multiraft/multiraft/server/rpcpb"
)

const kvAbout = `Talks to a running cluster through PD.

commands:
  get KEY                         print KEY's value (exit status 3 if absent)
  put KEY VALUE                   write KEY, print its new version
  delete KEY                      delete KEY
  scan [START [END]]              print the pairs in [START, END), one per line: key<TAB>value
  cas KEY VERSION VALUE           write VALUE if KEY's version is VERSION (0: if absent)
  regions                         list PD's routing view: region, range, epoch, leader, peers
  stores                          list the stores PD knows
  split REGION KEY                split REGION at KEY (asks its leader)
  move REGION FROM_STORE TO_STORE move REGION's replica between stores
  transfer-leader REGION STORE    make STORE lead REGION

exit status: 0 done, 1 failed (or outcome unknown: a write that timed out),
2 bad usage, 3 key not found (get), or cas/delete that changed nothing`

// errNotFound: get of an absent key, a cas that did not swap, a delete of
// an absent key (exit status 3).
var errNotFound = errors.New("not found")

func runKV(args []string, stdout, stderr io.Writer) int {
	err := kvMain(args, stdout, stderr)
	if errors.Is(err, errNotFound) {
		fmt.Fprintf(stderr, "multiraft kv: %v\n", err)
		return 3
	}
	return exitCode("kv", err, stderr)
}

func kvMain(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("kv", " COMMAND [ARGS]", kvAbout, stderr)
	pdAddr := fs.String("pd", "127.0.0.1:2379", "PD's address")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this long")
	limit := fs.Int("limit", 0, "scan: at most this many pairs (0: all)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return usageErr("no command")
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	need := func(n int, what string) error {
		if len(rest) != n {
			return usageErr("%s needs %s", cmd, what)
		}
		return nil
	}
	switch cmd {
	case "get", "put", "delete", "scan", "cas":
		return kvData(ctx, *pdAddr, cmd, rest, *limit, need, stdout)
	case "regions", "stores", "split", "move", "transfer-leader":
		return kvAdmin(ctx, *pdAddr, cmd, rest, need, stdout)
	}
	return usageErr("unknown command %q (multiraft kv --help lists them)", cmd)
}

func kvData(ctx context.Context, pdAddr, cmd string, rest []string, limit int, need func(int, string) error, stdout io.Writer) error {
	var check error
	switch cmd {
	case "get", "delete":
		check = need(1, "KEY")
	case "put":
		check = need(2, "KEY VALUE")
	case "cas":
		check = need(3, "KEY VERSION VALUE")
	case "scan":
		if len(rest) > 2 {
			check = usageErr("scan takes at most START and END")
		}
	}
	if check != nil {
		return check
	}
	c, err := kvclient.New(ctx, kvclient.Config{PD: pdAddr})
	if err != nil {
		return err
	}
	defer c.Close()
	switch cmd {
	case "get":
		v, err := c.Get(ctx, []byte(rest[0]))
		if err != nil {
			return err
		}
		if !v.Found {
			return fmt.Errorf("%w: key %q", errNotFound, rest[0])
		}
		fmt.Fprintf(stdout, "%s\n", v.Value)
	case "put":
		v, err := c.Put(ctx, []byte(rest[0]), []byte(rest[1]))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "OK version %d\n", v)
	case "delete":
		ok, err := c.Delete(ctx, []byte(rest[0]))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: key %q (nothing deleted)", errNotFound, rest[0])
		}
		fmt.Fprintln(stdout, "OK deleted")
	case "cas":
		ver, err := strconv.ParseUint(rest[1], 10, 64)
		if err != nil {
			return usageErr("cas: VERSION %q is not a number", rest[1])
		}
		ok, now, err := c.CompareAndSwap(ctx, []byte(rest[0]), ver, []byte(rest[2]))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: cas of %q: its version is %d, not %d (nothing written)", errNotFound, rest[0], now, ver)
		}
		fmt.Fprintf(stdout, "OK version %d\n", now)
	case "scan":
		var start, end []byte
		if len(rest) > 0 {
			start = []byte(rest[0])
		}
		if len(rest) > 1 {
			end = []byte(rest[1])
		}
		kvs, err := c.Scan(ctx, start, end, limit)
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			fmt.Fprintf(stdout, "%s\t%s\n", kv.Key, kv.Value)
		}
	}
	return nil
}

func parseU64(name, s string) (uint64, error) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, usageErr("%s %q is not a number", name, s)
	}
	return v, nil
}

func kvAdmin(ctx context.Context, pdAddr, cmd string, rest []string, need func(int, string) error, stdout io.Writer) error {
	switch cmd {
	case "regions", "stores":
		if err := need(0, "no arguments"); err != nil {
			return err
		}
	case "split", "transfer-leader":
		if err := need(2, map[string]string{"split": "REGION KEY", "transfer-leader": "REGION STORE"}[cmd]); err != nil {
			return err
		}
	case "move":
		if err := need(3, "REGION FROM_STORE TO_STORE"); err != nil {
			return err
		}
	}
	var nums []uint64
	for i, a := range rest {
		if cmd == "split" && i == 1 {
			break
		}
		n, err := parseU64(strings.ToUpper(cmd)+" argument", a)
		if err != nil {
			return err
		}
		nums = append(nums, n)
	}
	conn, err := server.Dial(pdAddr)
	if err != nil {
		return err
	}
	defer conn.Close()
	info, err := server.ClusterInfo(ctx, conn)
	if err != nil {
		return err
	}
	h := &rpcpb.Header{ClusterId: info.GetClusterId()}
	p := rpcpb.NewPDClient(conn)
	switch cmd {
	case "regions":
		resp, err := p.ListRegions(ctx, &rpcpb.ListRegionsRequest{Header: h})
		if err != nil {
			return rpcErr(err)
		}
		fmt.Fprintf(stdout, "%-8s %-30s %-10s %-8s %s\n", "REGION", "RANGE", "EPOCH", "LEADER", "PEERS (id@store)")
		for _, ri := range resp.GetRegions() {
			r := ri.GetRegion()
			leader := "-"
			if l := ri.GetLeader(); l != nil {
				leader = fmt.Sprintf("store %d", l.GetStoreId())
			}
			var peers []string
			for _, pp := range r.GetPeers() {
				s := fmt.Sprintf("%d@%d", pp.GetId(), pp.GetStoreId())
				if pp.GetRole() != pb.PeerRole_VOTER {
					s += "(" + strings.ToLower(pp.GetRole().String()) + ")"
				}
				peers = append(peers, s)
			}
			fmt.Fprintf(stdout, "%-8d %-30s %-10s %-8s %s\n", r.GetId(), r.RangeString(),
				fmt.Sprintf("%d/%d", r.GetEpoch().GetConfVer(), r.GetEpoch().GetVersion()), leader, strings.Join(peers, " "))
		}
	case "stores":
		resp, err := p.ListStores(ctx, &rpcpb.ListStoresRequest{Header: h})
		if err != nil {
			return rpcErr(err)
		}
		fmt.Fprintf(stdout, "%-6s %-22s %-13s %8s %8s\n", "STORE", "ADDRESS", "STATE", "REGIONS", "LEADERS")
		for _, s := range resp.GetStores() {
			fmt.Fprintf(stdout, "%-6d %-22s %-13s %8d %8d\n", s.GetId(), s.GetAddress(), s.GetState(), s.GetRegions(), s.GetLeaders())
		}
	case "move":
		resp, err := p.MoveRegion(ctx, &rpcpb.MoveRegionRequest{Header: h, RegionId: nums[0], FromStore: nums[1], ToStore: nums[2]})
		return adminResult(resp, err, stdout)
	case "transfer-leader":
		resp, err := p.TransferLeader(ctx, &rpcpb.TransferLeaderRequest{Header: h, RegionId: nums[0], ToStore: nums[1]})
		return adminResult(resp, err, stdout)
	case "split":
		return kvSplit(ctx, p, h, nums[0], []byte(rest[1]), stdout)
	}
	return nil
}

func rpcErr(err error) error { return errors.New(errorText(err)) }

// errorText is a gRPC error's message without the "rpc error: code = ..."
// prefix.
func errorText(err error) string {
	s := err.Error()
	if i := strings.Index(s, " desc = "); i >= 0 {
		return s[i+len(" desc = "):]
	}
	return s
}

func adminResult(resp *pb.AdminResponse, err error, stdout io.Writer) error {
	if err != nil {
		return rpcErr(err)
	}
	if resp.GetError() != "" {
		return errors.New(resp.GetError())
	}
	fmt.Fprintf(stdout, "OK operator %d started\n", resp.GetOperatorId())
	return nil
}

// kvSplit asks the leader of region to split it at key.
func kvSplit(ctx context.Context, p rpcpb.PDClient, h *rpcpb.Header, region uint64, key []byte, stdout io.Writer) error {
	for {
		r, err := p.GetRegionByID(ctx, &rpcpb.GetRegionByIDRequest{Header: h, RegionId: region})
		if err != nil {
			return rpcErr(err)
		}
		if r.GetRegion() == nil {
			return fmt.Errorf("region %d is unknown to PD", region)
		}
		if l := r.GetLeader(); l != nil {
			stores, err := p.ListStores(ctx, &rpcpb.ListStoresRequest{Header: h})
			if err != nil {
				return rpcErr(err)
			}
			for _, s := range stores.GetStores() {
				if s.GetId() != l.GetStoreId() {
					continue
				}
				conn, err := server.Dial(s.GetAddress())
				if err != nil {
					return err
				}
				_, err = rpcpb.NewStoreAdminClient(conn).SplitRegion(ctx, &rpcpb.SplitRegionRequest{Header: h, RegionId: region, SplitKey: key})
				conn.Close()
				if err == nil {
					fmt.Fprintf(stdout, "OK split of region %d at %q requested from store %d\n", region, key, s.GetId())
					return nil
				}
				if !strings.Contains(err.Error(), "not the leader") {
					return rpcErr(err)
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("split region %d: no leader answered in time", region)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

var _ = flag.ErrHelp
