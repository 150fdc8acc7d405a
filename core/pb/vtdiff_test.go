package pb

import (
	"bytes"
	"math"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"pgregory.net/rapid"
)

type vtMessage interface {
	proto.Message
	MarshalVT() ([]byte, error)
	UnmarshalVT([]byte) error
	SizeVT() int
	CloneMessageVT() proto.Message
}

// ourMessages lists every message type of this package that has vtproto
// methods.
func ourMessages(t testing.TB) []protoreflect.MessageType {
	var out []protoreflect.MessageType
	for _, fd := range []protoreflect.FileDescriptor{File_multiraft_proto, File_pdstate_proto} {
		ms := fd.Messages()
		for i := 0; i < ms.Len(); i++ {
			mt, err := protoregistry.GlobalTypes.FindMessageByName(ms.Get(i).FullName())
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := mt.New().Interface().(vtMessage); ok {
				out = append(out, mt)
			}
		}
	}
	return out
}

func drawScalar(t *rapid.T, fd protoreflect.FieldDescriptor, name string) protoreflect.Value {
	u := rapid.OneOf(rapid.Uint64Range(0, 3), rapid.Uint64()).Draw(t, name)
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(u&1 == 1)
	case protoreflect.EnumKind:
		vs := fd.Enum().Values()
		if fd.Enum().IsClosed() {
			return protoreflect.ValueOfEnum(vs.Get(int(u % uint64(vs.Len()))).Number())
		}
		return protoreflect.ValueOfEnum(protoreflect.EnumNumber(int32(u)))
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(u))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(int64(u))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(uint32(u))
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(u)
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(math.Float32frombits(uint32(u)))
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(math.Float64frombits(u))
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(rapid.StringN(0, 8, -1).Draw(t, name+"-s"))
	case protoreflect.BytesKind:
		switch rapid.IntRange(0, 2).Draw(t, name+"-bk") {
		case 0:
			return protoreflect.ValueOfBytes(nil)
		case 1:
			return protoreflect.ValueOfBytes([]byte{})
		}
		return protoreflect.ValueOfBytes(rapid.SliceOfN(rapid.Byte(), 1, 12).Draw(t, name+"-b"))
	}
	panic(fd.Kind())
}

// fill sets a random subset of m's fields, to depth levels of nesting,
// raft's messages included, and sometimes unknown fields.
func fill(t *rapid.T, m protoreflect.Message, depth int, name string) {
	fds := m.Descriptor().Fields()
	for i := 0; i < fds.Len(); i++ {
		fd := fds.Get(i)
		n := name + "." + string(fd.Name())
		if !rapid.Bool().Draw(t, n+"?") {
			continue
		}
		switch {
		case fd.IsMap():
			continue
		case fd.IsList():
			l := m.Mutable(fd).List()
			for j := rapid.IntRange(0, 3).Draw(t, n+"#"); j > 0; j-- {
				if fd.Message() != nil {
					if depth == 0 {
						break
					}
					e := l.NewElement()
					fill(t, e.Message(), depth-1, n)
					l.Append(e)
				} else {
					l.Append(drawScalar(t, fd, n))
				}
			}
		case fd.Message() != nil:
			if depth == 0 {
				continue
			}
			fill(t, m.Mutable(fd).Message(), depth-1, n)
		default:
			m.Set(fd, drawScalar(t, fd, n))
		}
	}
	if rapid.IntRange(0, 9).Draw(t, name+"-unk") == 0 {
		// field 1999, varint 5
		m.SetUnknown(protoreflect.RawFields{0xf8, 0x7c, 0x05})
	}
}

// TestVTMatchesProtobuf: for every message of ours, with any fields set
// (raft's messages inside included), MarshalVT writes proto.Marshal's
// bytes, SizeVT is proto.Size, UnmarshalVT reads what proto.Unmarshal
// reads, and CloneVT is a deep copy equal to proto.Clone's.
func TestVTMatchesProtobuf(t *testing.T) {
	types := ourMessages(t)
	rapid.Check(t, func(t *rapid.T) {
		mt := rapid.SampledFrom(types).Draw(t, "type")
		m := mt.New()
		fill(t, m, 3, string(mt.Descriptor().Name()))
		vm := m.Interface().(vtMessage)
		want, werr := proto.MarshalOptions{AllowPartial: true}.Marshal(vm)
		got, gerr := vm.MarshalVT()
		if werr != nil {
			// proto.Marshal refuses what MarshalVT writes (invalid
			// UTF-8 in a string): noted, not a failure here.
			t.Skipf("protobuf refuses: %v", werr)
		}
		if gerr != nil {
			t.Fatalf("MarshalVT: %v", gerr)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: MarshalVT\n%x\nproto.Marshal\n%x", mt.Descriptor().Name(), got, want)
		}
		if vm.SizeVT() != len(want) {
			t.Fatalf("SizeVT %d, proto.Size %d", vm.SizeVT(), len(want))
		}
		back := mt.New().Interface().(vtMessage)
		if err := back.UnmarshalVT(want); err != nil {
			t.Fatalf("UnmarshalVT: %v", err)
		}
		if !proto.Equal(back, vm) {
			t.Fatalf("UnmarshalVT read %v, want %v", back, vm)
		}
		c := vm.CloneMessageVT()
		if !proto.Equal(c, vm) {
			t.Fatalf("CloneVT %v, want %v", c, vm)
		}
		cb, _ := proto.Marshal(c)
		if !bytes.Equal(cb, want) {
			t.Fatalf("clone marshals differently")
		}
		// A deep copy: changing the original's bytes leaves the clone be.
		scribble(m)
		cb2, _ := proto.Marshal(c)
		if !bytes.Equal(cb2, want) {
			t.Fatalf("clone shares memory with the original")
		}
	})
}

// scribble overwrites every byte slice reachable from m in place.
func scribble(m protoreflect.Message) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				if fd.Message() != nil {
					scribble(l.Get(i).Message())
				} else if fd.Kind() == protoreflect.BytesKind {
					for j := range l.Get(i).Bytes() {
						l.Get(i).Bytes()[j] ^= 0xff
					}
				} else if fd.Kind() != protoreflect.StringKind {
					// mutate scalars through the list
				}
			}
		case fd.Message() != nil && !fd.IsMap():
			scribble(v.Message())
		case fd.Kind() == protoreflect.BytesKind:
			for j := range v.Bytes() {
				v.Bytes()[j] ^= 0xff
			}
		}
		return true
	})
}
