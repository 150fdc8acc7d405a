// Package rpcpb holds the generated gRPC services and messages of a real
// multiraft deployment (multiraft_rpc.proto): RaftService, KvService, StoreAdmin and
// PD. Regenerating needs protoc, protoc-gen-go and protoc-gen-go-grpc; the
// generated files are committed so builds need none of them.
package rpcpb

//go:generate sh -c "protoc -I . -I ../../core/pb -I $(go list -m -f '{{.Dir}}' go.etcd.io/raft/v3)/raftpb --go_out=. --go_opt=paths=source_relative --go_opt=Mmultiraft.proto=github.com/multiraft/multiraft/core/pb --go-grpc_out=. --go-grpc_opt=paths=source_relative --go-grpc_opt=Mmultiraft.proto=github.com/multiraft/multiraft/core/pb multiraft_rpc.proto"
