// Package pb holds the generated protobuf types of multiraft's wire and disk
// formats (multiraft.proto). Regenerating needs protoc and protoc-gen-go;
// the generated file is committed so builds need neither.
package pb

//go:generate sh -c "protoc -I . -I $(go list -m -f '{{.Dir}}' go.etcd.io/raft/v3)/raftpb --go_out=. --go_opt=paths=source_relative multiraft.proto pdstate.proto"
