package server_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/multiraft/multiraft/core/pb"
	"github.com/multiraft/multiraft/kvclient"
	"github.com/multiraft/multiraft/server"
	"github.com/multiraft/multiraft/server/rpcpb"
)

// Bad input over the wire: a clear error, nothing changed, the process
// keeps serving.
func TestBadInputOverTheWire(t *testing.T) {
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kvclient.New(ctx, kvclient.Config{PD: c.pd.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.Put(ctx, []byte("k"), []byte("v1")); err != nil {
		t.Fatal(err)
	}
	good := &rpcpb.Header{ClusterId: c.pd.ClusterID()}
	foreign := &rpcpb.Header{ClusterId: c.pd.ClusterID() + 1}
	wantCode := func(what string, err error, code codes.Code, msg string) {
		t.Helper()
		st, _ := status.FromError(err)
		if st.Code() != code || !bytes.Contains([]byte(st.Message()), []byte(msg)) {
			t.Fatalf("%s: got %v, want %v with %q", what, err, code, msg)
		}
	}

	pdConn, err := server.Dial(c.pd.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer pdConn.Close()
	pdc := rpcpb.NewPDClient(pdConn)
	_, err = pdc.GetRegion(ctx, &rpcpb.GetRegionRequest{Header: foreign, Key: []byte("k")})
	wantCode("PD, foreign cluster", err, codes.FailedPrecondition, "cluster id mismatch")
	_, err = pdc.GetRegion(ctx, &rpcpb.GetRegionRequest{Key: []byte("k")})
	wantCode("PD, no header", err, codes.InvalidArgument, "without a cluster id")
	_, err = pdc.StoreHeartbeat(ctx, &rpcpb.StoreHeartbeatRequest{Header: good, Heartbeat: &pb.StoreHeartbeat{StoreId: 77}})
	wantCode("PD, unknown store", err, codes.NotFound, "store 77 is not a store")
	_, err = pdc.RegionHeartbeat(ctx, &rpcpb.RegionHeartbeatRequest{Header: &rpcpb.Header{ClusterId: good.ClusterId, Sender: 77},
		Heartbeat: &pb.RegionHeartbeat{Region: &pb.Region{Id: 1}}})
	wantCode("PD, heartbeat from unknown store", err, codes.NotFound, "store 77")
	boot, err := pdc.StoreHello(ctx, &rpcpb.StoreHelloRequest{Header: good, Hello: &pb.StoreHello{StoreId: 77}})
	if err != nil || boot.GetError() == "" {
		t.Fatalf("hello from a store not in the layout: %v %v", boot, err)
	}

	kvConn, err := server.Dial(c.stores[1].Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer kvConn.Close()
	kv := rpcpb.NewKvServiceClient(kvConn)
	_, err = kv.Put(ctx, &rpcpb.PutRequest{Header: foreign, Context: &rpcpb.Context{RegionId: 1}, Key: []byte("k"), Value: []byte("evil")})
	wantCode("store, foreign cluster", err, codes.FailedPrecondition, "cluster id mismatch")
	_, err = kv.Put(ctx, &rpcpb.PutRequest{Header: good, Context: &rpcpb.Context{RegionId: 4242, RegionEpoch: &pb.Epoch{}}, Key: []byte("k"), Value: []byte("evil")})
	wantCode("store, unknown region", err, codes.FailedPrecondition, "region not found")
	if re := server.RegionErrorOf(err); re.GetRegionNotFound() == nil {
		t.Fatalf("unknown region: detail %v, want RegionNotFound", re)
	}
	_, err = kv.Put(ctx, &rpcpb.PutRequest{Header: good, Key: []byte("k")})
	wantCode("store, no context", err, codes.InvalidArgument, "without a context")
	_, err = kv.Put(ctx, &rpcpb.PutRequest{Header: good, Context: &rpcpb.Context{RegionId: 1, RegionEpoch: &pb.Epoch{ConfVer: 1, Version: 1}},
		Key: []byte("k"), Value: make([]byte, server.MaxMessageBytes+1)})
	wantCode("store, oversized", err, codes.ResourceExhausted, "")

	// A raft stream of another cluster is refused; a malformed raft
	// message is dropped by the store's checks.
	rc := rpcpb.NewRaftServiceClient(kvConn)
	st, err := rc.Raft(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st.Send(&rpcpb.RaftBatch{Header: &rpcpb.Header{ClusterId: foreign.ClusterId, Sender: 2}, Msgs: []*pb.RaftMessage{{RegionId: 1}}})
	_, err = st.CloseAndRecv()
	wantCode("raft, foreign cluster", err, codes.FailedPrecondition, "cluster id mismatch")
	st, err = rc.Raft(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st.Send(&rpcpb.RaftBatch{Header: &rpcpb.Header{ClusterId: good.ClusterId, Sender: 2},
		Msgs: []*pb.RaftMessage{{RegionId: 1}, {RegionId: 999, FromPeer: &pb.Peer{Id: 1, StoreId: 2}}}})
	if _, err := st.CloseAndRecv(); err != nil {
		t.Fatalf("raft stream with malformed messages: %v", err)
	}
	st, _ = rc.Raft(ctx)
	st.Send(&rpcpb.RaftBatch{Header: &rpcpb.Header{ClusterId: good.ClusterId}})
	_, err = st.CloseAndRecv()
	wantCode("raft, no sender", err, codes.InvalidArgument, "not a store id")

	// Still serving, nothing changed.
	v, err := cl.Get(ctx, []byte("k"))
	if err != nil || string(v.Value) != "v1" || v.Version != 1 {
		t.Fatalf("after bad input: %+v %v", v, err)
	}
	if _, err := cl.Put(ctx, []byte("k"), []byte("v2")); err != nil {
		t.Fatalf("put after bad input: %v", err)
	}
}
