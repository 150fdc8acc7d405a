// Package pb holds the generated protobuf types of multiraft's wire and disk
// formats (multiraft.proto). Regenerating needs protoc, protoc-gen-go and
// protoc-gen-go-vtproto (github.com/planetscale/vtprotobuf, v0.6.0); the
// generated files are committed so builds need neither.
//
// The vtproto files add MarshalVT, UnmarshalVT, SizeVT and CloneVT: the same
// bytes as proto.Marshal without reflection, several times cheaper. The hot
// paths use them (the simulator's network, the WAL encoder, commands
// proposed and applied, clones); decoding bytes from outside (gRPC, WAL
// replay, snapshots) stays with proto.Unmarshal, which also checks that
// strings are valid UTF-8. The raft messages and entries inside ours are
// etcd's types, which vtproto cannot give methods: fastraft.sed points the
// generated code at raftcodec.go for them.
package pb

//go:generate sh -c "protoc -I . -I $(go list -m -f '{{.Dir}}' go.etcd.io/raft/v3)/raftpb --go_out=. --go_opt=paths=source_relative --go-vtproto_out=. --go-vtproto_opt=paths=source_relative --go-vtproto_opt=features=marshal+unmarshal+size+clone multiraft.proto pdstate.proto"
//go:generate sed -i -f fastraft.sed multiraft_vtproto.pb.go
