package checker

import (
	"fmt"

	"github.com/multiraft/multiraft/core/pb"
)

// OpKind is the kind of a client operation.
type OpKind uint8

// The kinds of client operations.
const (
	OpGet OpKind = iota
	OpPut
	OpDelete
	OpCas
	OpScan
)

// String returns the lower-case name of the kind.
func (k OpKind) String() string {
	switch k {
	case OpGet:
		return "get"
	case OpPut:
		return "put"
	case OpDelete:
		return "delete"
	case OpCas:
		return "cas"
	case OpScan:
		return "scan"
	default:
		return fmt.Sprintf("OpKind(%d)", uint8(k))
	}
}

// Outcome says what the client knows about whether an operation took effect.
type Outcome uint8

// The outcomes of a client operation.
const (
	// OutcomeOK: the operation completed and its results are known.
	OutcomeOK Outcome = iota
	// OutcomeFailed: the operation definitely did not take effect.
	OutcomeFailed
	// OutcomeAmbiguous: the operation may or may not have taken effect
	// (for example it timed out after being proposed).
	OutcomeAmbiguous
)

// String returns the lower-case name of the outcome.
func (o Outcome) String() string {
	switch o {
	case OutcomeOK:
		return "ok"
	case OutcomeFailed:
		return "failed"
	case OutcomeAmbiguous:
		return "ambiguous"
	default:
		return fmt.Sprintf("Outcome(%d)", uint8(o))
	}
}

// Pair is one key-value pair returned by a scan.
type Pair struct {
	Key, Value string
	Version    uint64
}

// Op is one client operation as recorded by the workload.
type Op struct {
	ClientID int
	Kind     OpKind
	// Key is the key of a get, put, delete or cas.
	Key string
	// Value is the value written by a put or cas. The workload makes every
	// written value unique.
	Value string
	// ExpectedVersion is the version a cas expects; 0 means "only if absent".
	ExpectedVersion uint64
	// ScanStart and ScanEnd bound a scan to [ScanStart, ScanEnd); an empty
	// ScanEnd means +infinity.
	ScanStart, ScanEnd string
	// ScanLimit caps the number of pairs a scan returns; 0 means no limit.
	ScanLimit int
	// Call and Return are virtual nanoseconds. Return is meaningless when
	// the outcome is ambiguous.
	Call, Return int64
	Outcome      Outcome
	// EffectBy, for an ambiguous write, is a time by which the write is
	// known to have taken effect (0: not known). The simulator knows it:
	// the write was applied, so committed, by then, and every operation
	// called later must see it. The checker then takes it as the write's
	// return: its effect lies between Call and EffectBy, its result still
	// unknown. Without it an ambiguous write may take effect at any time
	// after its call, which makes the check exponential in how many of
	// them overlap.
	EffectBy int64

	// Results, meaningful when Outcome == OutcomeOK.

	// Found reports whether a get found the key.
	Found bool
	// ResultValue is the value a get read.
	ResultValue string
	// Version is the version a get read, the new version a put wrote, the
	// new version of a successful cas, or the current version a failed cas
	// saw (0 when absent).
	Version uint64
	// Deleted reports whether the key a delete removed existed.
	Deleted bool
	// CasSucceeded reports whether a cas wrote its value.
	CasSucceeded bool
	// Pairs is the result of a scan, sorted by key.
	Pairs []Pair
}

// History is everything the workload did during one run.
type History struct {
	Ops []Op
	// Keys is the universe of keys the workload may touch; scans are
	// expanded into reads of the keys of this set that lie in their range.
	Keys []string
}

// describe renders the operation for error messages.
func (op Op) describe() string {
	var s string
	switch op.Kind {
	case OpGet:
		s = fmt.Sprintf("get(%q)", op.Key)
	case OpPut:
		s = fmt.Sprintf("put(%q, %q)", op.Key, op.Value)
	case OpDelete:
		s = fmt.Sprintf("delete(%q)", op.Key)
	case OpCas:
		s = fmt.Sprintf("cas(%q, expect v%d, %q)", op.Key, op.ExpectedVersion, op.Value)
	case OpScan:
		s = fmt.Sprintf("scan(%s, limit %d)", pb.FormatRange([]byte(op.ScanStart), []byte(op.ScanEnd)), op.ScanLimit)
	default:
		s = op.Kind.String()
	}
	return fmt.Sprintf("client %d %s [t=%d..%d, %s]", op.ClientID, s, op.Call, op.Return, op.Outcome)
}
