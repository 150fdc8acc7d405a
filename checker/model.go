package checker

import (
	"fmt"
	"sort"

	"github.com/anishathalye/porcupine"
)

// kvState is the state of one key in the model: absent (version 0) or
// present with a value and a version.
type kvState struct {
	present bool
	value   string
	version uint64
}

// kvInput is what an operation asked for. Scans never reach the model: they
// are expanded into gets first.
type kvInput struct {
	kind     OpKind // OpGet, OpPut, OpDelete or OpCas
	key      string
	value    string
	expected uint64
	// unknown marks an ambiguous write: its output is not known, so the
	// model applies its effect (as the state dictates) and accepts any
	// output.
	unknown bool
}

// kvOutput is what an operation returned.
type kvOutput struct {
	found   bool
	value   string
	version uint64
	deleted bool
	casOK   bool
}

// opMeta ties a porcupine operation back to the history.
type opMeta struct {
	index int // index into History.Ops
	op    Op  // the original operation
}

// hash is FNV-1a over the state's fields; porcupine's cache keys on it.
func (st kvState) hash() uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	if st.present {
		h = (h ^ 1) * prime
	}
	for v := st.version; ; v >>= 8 {
		h = (h ^ (v & 0xff)) * prime
		if v < 0x100 {
			break
		}
	}
	for i := 0; i < len(st.value); i++ {
		h = (h ^ uint64(st.value[i])) * prime
	}
	return h
}

// step applies one operation to one key's state. It is pure.
func step(st kvState, in *kvInput, out *kvOutput) (bool, kvState) {
	switch in.kind {
	case OpGet:
		if in.unknown {
			return true, st
		}
		if out.found != st.present {
			return false, st
		}
		if st.present && (out.value != st.value || out.version != st.version) {
			return false, st
		}
		return true, st
	case OpPut:
		next := kvState{present: true, value: in.value, version: st.version + 1}
		return in.unknown || out.version == next.version, next
	case OpDelete:
		return in.unknown || out.deleted == st.present, kvState{}
	case OpCas:
		if st.version == in.expected {
			next := kvState{present: true, value: in.value, version: st.version + 1}
			return in.unknown || (out.casOK && out.version == next.version), next
		}
		return in.unknown || (!out.casOK && out.version == st.version), st
	default:
		return false, st
	}
}

// newModel returns the per-key porcupine model. Partition groups operations
// by key, in sorted key order, so partition i is the i-th key of
// partitionByKey's key list.
func newModel() porcupine.Model {
	return porcupine.Model{
		Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
			parts, _ := partitionByKey(history)
			return parts
		},
		Init: func() interface{} { return kvState{} },
		Step: func(state, input, output interface{}) (bool, interface{}) {
			st := state.(kvState)
			ok, next := step(st, input.(*kvInput), output.(*kvOutput))
			if next == st {
				// Unchanged (every get, a failed cas): hand back the boxed
				// state as it came, without boxing a copy.
				return ok, state
			}
			return ok, next
		},
		Equal: func(a, b interface{}) bool { return a.(kvState) == b.(kvState) },
		Hash:  func(state interface{}) uint64 { return state.(kvState).hash() },
		DescribeOperation: func(input, output interface{}) string {
			return describeOperation(input.(*kvInput), output.(*kvOutput))
		},
		DescribeState: func(state interface{}) string {
			return describeState(state.(kvState))
		},
		DescribeOperationMetadata: func(info interface{}) string {
			m, ok := info.(opMeta)
			if !ok {
				return ""
			}
			return fmt.Sprintf("op #%d: %s", m.index, m.op.describe())
		},
	}
}

// partitionByKey groups operations by key and returns the groups in sorted
// key order together with the keys. Within a group the history order is kept.
func partitionByKey(history []porcupine.Operation) ([][]porcupine.Operation, []string) {
	byKey := make(map[string][]porcupine.Operation)
	for _, op := range history {
		k := op.Input.(*kvInput).key
		byKey[k] = append(byKey[k], op)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([][]porcupine.Operation, len(keys))
	for i, k := range keys {
		parts[i] = byKey[k]
	}
	return parts, keys
}

func describeState(st kvState) string {
	if !st.present {
		return "absent"
	}
	return fmt.Sprintf("%q@v%d", st.value, st.version)
}

func describeOperation(in *kvInput, out *kvOutput) string {
	var call, ret string
	switch in.kind {
	case OpGet:
		call = fmt.Sprintf("get(%q)", in.key)
		if out.found {
			ret = fmt.Sprintf("%q@v%d", out.value, out.version)
		} else {
			ret = "absent"
		}
	case OpPut:
		call = fmt.Sprintf("put(%q, %q)", in.key, in.value)
		ret = fmt.Sprintf("v%d", out.version)
	case OpDelete:
		call = fmt.Sprintf("delete(%q)", in.key)
		if out.deleted {
			ret = "existed"
		} else {
			ret = "was absent"
		}
	case OpCas:
		call = fmt.Sprintf("cas(%q, expect v%d, %q)", in.key, in.expected, in.value)
		if out.casOK {
			ret = fmt.Sprintf("ok v%d", out.version)
		} else {
			ret = fmt.Sprintf("failed, current v%d", out.version)
		}
	default:
		call = in.kind.String()
	}
	if in.unknown {
		ret = "? (ambiguous)"
	}
	return call + " -> " + ret
}
