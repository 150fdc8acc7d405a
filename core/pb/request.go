package pb

import (
	"bytes"
	"fmt"
)

// Key is the key that decides which region serves the request: the key of a
// get, put, delete or cas, the start of a scan; nil when the request has no
// operation.
func (r *KvRequest) Key() []byte {
	switch op := r.GetOp().(type) {
	case *KvRequest_Get:
		return op.Get.GetKey()
	case *KvRequest_Put:
		return op.Put.GetKey()
	case *KvRequest_Delete:
		return op.Delete.GetKey()
	case *KvRequest_Cas:
		return op.Cas.GetKey()
	case *KvRequest_Scan:
		return op.Scan.GetStartKey()
	}
	return nil
}

// IsWrite reports whether the request changes state (put, delete, cas) and
// so goes through the raft log; gets and scans are reads.
func (r *KvRequest) IsWrite() bool {
	switch r.GetOp().(type) {
	case *KvRequest_Put, *KvRequest_Delete, *KvRequest_Cas:
		return true
	}
	return false
}

// Validate returns why the request's operation is malformed, or nil.
func (r *KvRequest) Validate() error {
	switch op := r.GetOp().(type) {
	case *KvRequest_Get:
		if len(op.Get.GetKey()) == 0 {
			return fmt.Errorf("get: empty key")
		}
	case *KvRequest_Put:
		if len(op.Put.GetKey()) == 0 {
			return fmt.Errorf("put: empty key")
		}
	case *KvRequest_Delete:
		if len(op.Delete.GetKey()) == 0 {
			return fmt.Errorf("delete: empty key")
		}
	case *KvRequest_Cas:
		if len(op.Cas.GetKey()) == 0 {
			return fmt.Errorf("cas: empty key")
		}
	case *KvRequest_Scan:
		sc := op.Scan
		if len(sc.GetEndKey()) > 0 && bytes.Compare(sc.GetStartKey(), sc.GetEndKey()) >= 0 {
			return fmt.Errorf("scan: start %q is not before end %q", sc.GetStartKey(), sc.GetEndKey())
		}
	default:
		return fmt.Errorf("request has no operation")
	}
	if s := r.GetSession(); s != nil {
		if err := s.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// SessionIDBytes is the size of a session id: 128 random bits.
const SessionIDBytes = 16

// Validate returns why a write's session fields are malformed, or nil.
func (s *Session) Validate() error {
	switch {
	case len(s.GetId()) != SessionIDBytes:
		return fmt.Errorf("session id of %d bytes, want %d (128 random bits)", len(s.GetId()), SessionIDBytes)
	case s.GetSequence() == 0:
		return fmt.Errorf("session sequence 0: a session numbers its writes from 1")
	case s.GetLowest() > s.GetSequence():
		return fmt.Errorf("session lowest %d is above the write's sequence %d (the client still waits for this write)", s.GetLowest(), s.GetSequence())
	case s.GetStartedMs() == 0:
		return fmt.Errorf("session write without started_ms (when the client first sent it, unix ms): a region could not tell a late retry from a new write")
	}
	return nil
}

// Key is the key a write command changes; nil for admin commands (split)
// and empty commands.
func (c *RaftCommand) Key() []byte {
	switch cmd := c.GetCmd().(type) {
	case *RaftCommand_Put:
		return cmd.Put.GetKey()
	case *RaftCommand_Delete:
		return cmd.Delete.GetKey()
	case *RaftCommand_Cas:
		return cmd.Cas.GetKey()
	}
	return nil
}

// SizeLimits bound the keys and values a request may carry. Zero means no
// bound.
type SizeLimits struct {
	MaxKeyBytes   int
	MaxValueBytes int
}

// CheckSizes returns an error naming the limit when one of the request's
// keys (the scan bounds too) or its value is larger than l allows.
func (r *KvRequest) CheckSizes(l SizeLimits) error {
	keys := [][]byte{r.Key()}
	var value []byte
	switch op := r.GetOp().(type) {
	case *KvRequest_Put:
		value = op.Put.GetValue()
	case *KvRequest_Cas:
		value = op.Cas.GetValue()
	case *KvRequest_Scan:
		keys = append(keys, op.Scan.GetEndKey())
	}
	if l.MaxKeyBytes > 0 {
		for _, k := range keys {
			if len(k) > l.MaxKeyBytes {
				return fmt.Errorf("key of %d bytes is over the limit of %d bytes", len(k), l.MaxKeyBytes)
			}
		}
	}
	if l.MaxValueBytes > 0 && len(value) > l.MaxValueBytes {
		return fmt.Errorf("value of %d bytes is over the limit of %d bytes", len(value), l.MaxValueBytes)
	}
	return nil
}
