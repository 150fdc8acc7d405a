package server

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/multiraft/multiraft/server/rpcpb"
)

// PDNodeID is PD's node id in a real cluster (Envelope.To of messages for
// PD). Store ids must be below it.
const PDNodeID = 1 << 32

// clientNodeBase: the node ids a store gives the client streams and calls
// it serves start here, far above any store id.
const clientNodeBase = 1 << 62

// MaxMessageBytes bounds one gRPC message a server accepts (a batch of raft
// messages, a snapshot chunk batch, a batch of KV requests). Larger ones are
// refused by gRPC with RESOURCE_EXHAUSTED before they reach anything.
const MaxMessageBytes = 32 << 20

// wallClock is core.Clock on the wall clock.
type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// newRand is a core.Rand seeded from the OS: nothing in real mode depends
// on replaying it (proposal ids are unique by the durable incarnation).
func newRand() *rand.PCG { return rand.NewPCG(rand.Uint64(), rand.Uint64()) }

// checkHeader returns the gRPC error for a request whose header does not
// name this cluster, or nil.
func checkHeader(h *rpcpb.Header, clusterID uint64) error {
	switch {
	case h == nil || h.GetClusterId() == 0:
		return status.Error(codes.InvalidArgument, "multiraft: request without a cluster id (header.cluster_id); ask PD's GetClusterInfo for it")
	case h.GetClusterId() != clusterID:
		return status.Errorf(codes.FailedPrecondition,
			"multiraft: cluster id mismatch: this process serves cluster %d, the request is for cluster %d", clusterID, h.GetClusterId())
	}
	return nil
}

// IsClusterMismatch reports whether err is a server's refusal of a request
// made for another cluster.
func IsClusterMismatch(err error) bool {
	s, ok := status.FromError(err)
	return ok && s.Code() == codes.FailedPrecondition && len(s.Message()) > 0 &&
		strings.Contains(s.Message(), "cluster id mismatch")
}

// serverOptions are the gRPC server options of every multiraft process.
func serverOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxMessageBytes),
		grpc.MaxSendMsgSize(MaxMessageBytes),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	}
}

// Dial opens a client connection to a multiraft process (PD or store). It
// does not wait for the connection: calls fail with UNAVAILABLE while the
// address does not answer.
func Dial(addr string) (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageBytes), grpc.MaxCallSendMsgSize(MaxMessageBytes)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}),
	)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return conn, nil
}

// Listen opens a TCP listener, with an error a person understands when the
// port is taken.
func Listen(addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("listen on %s: the port is already in use (another multiraft process, or something else, is listening there): %w", addr, err)
		}
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return l, nil
}

// ClusterInfo asks PD at conn for the cluster's identity, retrying while PD
// does not answer, until ctx ends. The error names the address.
func ClusterInfo(ctx context.Context, conn *grpc.ClientConn) (*rpcpb.ClusterInfo, error) {
	c := rpcpb.NewPDClient(conn)
	var last error
	for delay := 50 * time.Millisecond; ; delay = min(2*delay, time.Second) {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		info, err := c.GetClusterInfo(cctx, &rpcpb.ClusterInfoRequest{})
		cancel()
		if err == nil {
			return info, nil
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("PD at %s is unreachable: %v", conn.Target(), errorMessage(last))
		case <-time.After(delay):
		}
	}
}

// errorMessage is the message of a gRPC error without its code prefix.
func errorMessage(err error) string {
	if s, ok := status.FromError(err); ok {
		return s.Message()
	}
	return err.Error()
}

type errUnknownAddress uint64

func (e errUnknownAddress) Error() string {
	return fmt.Sprintf("PD knows no address for store %d", uint64(e))
}
