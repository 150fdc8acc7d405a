package rng

import "testing"

func TestSameSeedSameSequence(t *testing.T) {
	a, b := New(42), New(42)
	for i := 0; i < 1000; i++ {
		if x, y := a.Uint64(), b.Uint64(); x != y {
			t.Fatalf("draw %d: %d != %d", i, x, y)
		}
	}
	if New(1).Uint64() == New(2).Uint64() {
		t.Fatal("seeds 1 and 2 start the same")
	}
}

func TestStreamsAreIndependent(t *testing.T) {
	a, b := Stream(7, "network"), Stream(7, "disk")
	same := 0
	for i := 0; i < 100; i++ {
		if a.Uint64() == b.Uint64() {
			same++
		}
	}
	if same > 0 {
		t.Fatalf("%d equal draws from two named streams", same)
	}
	// Drawing from one stream does not move another.
	c1, c2 := Stream(7, "disk"), Stream(7, "disk")
	for i := 0; i < 10; i++ {
		Stream(7, "network").Uint64()
		if c1.Uint64() != c2.Uint64() {
			t.Fatal("streams interfere")
		}
	}
}

func TestIntnIsInRangeAndRoughlyUniform(t *testing.T) {
	r := New(3)
	const n, draws = 10, 100000
	var counts [n]int
	for i := 0; i < draws; i++ {
		v := r.Intn(n)
		if v < 0 || v >= n {
			t.Fatalf("Intn(%d) = %d", n, v)
		}
		counts[v]++
	}
	for v, c := range counts {
		if c < draws/n*9/10 || c > draws/n*11/10 {
			t.Fatalf("value %d drawn %d times of %d", v, c, draws)
		}
	}
	for i := 0; i < 1000; i++ {
		if f := r.Float64(); f < 0 || f >= 1 {
			t.Fatalf("Float64 = %v", f)
		}
	}
}

func TestReadFillsEveryByte(t *testing.T) {
	r := New(9)
	buf := make([]byte, 37)
	if n, err := r.Read(buf); n != len(buf) || err != nil {
		t.Fatalf("Read = %d, %v", n, err)
	}
	zero := 0
	for _, b := range buf {
		if b == 0 {
			zero++
		}
	}
	if zero > 5 {
		t.Fatalf("%d zero bytes of %d", zero, len(buf))
	}
}

// ForkInto gives the child Fork gives, and moves the parent alike.
func TestForkIntoIsFork(t *testing.T) {
	a, b := New(11), New(11)
	for i := 0; i < 5; i++ {
		fa := a.Fork()
		var fb Rand
		b.ForkInto(&fb)
		for j := 0; j < 4; j++ {
			if x, y := fa.Uint64(), fb.Uint64(); x != y {
				t.Fatalf("fork %d draw %d: %d vs %d", i, j, x, y)
			}
		}
	}
	if a.Uint64() != b.Uint64() {
		t.Fatal("the parents differ after forking")
	}
}
