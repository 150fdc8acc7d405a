package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestTraceHashDoesNotDependOnTheBuild runs every scenario once with two
// builds of the binary that protobuf-go tells apart, and requires equal
// trace hashes: a run is a function of (scenario, seed) only.
//
// protobuf-go deliberately varies its text output (%v of a message) and its
// error strings by a hash of the executable (internal/detrand), so that
// nobody compares them. A message formatted that way into anything that
// reaches the wire or the trace makes the hash depend on the build. The test
// builds with different version strings until two binaries fall on the two
// sides of that hash (varying the length of the version string), then
// compares them.
func TestTraceHashDoesNotDependOnTheBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary several times")
	}
	dir := t.TempDir()
	var bins [2]string
	seen := map[bool]string{}
	for i := 0; i < 16 && len(seen) < 2; i++ {
		bin := filepath.Join(dir, fmt.Sprintf("multiraft-%d", i))
		build := exec.Command("go", "build", "-o", bin, "-ldflags", fmt.Sprintf("-X main.version=test-%d%s", i, strings.Repeat("x", 1000*i)), ".")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		odd := detrandSeed(t, bin)%2 == 1
		if _, ok := seen[odd]; !ok {
			seen[odd] = bin
		}
	}
	if len(seen) < 2 {
		t.Fatal("16 builds all fell on one side of protobuf's build hash")
	}
	bins[0], bins[1] = seen[false], seen[true]
	hashes := [2]map[string]string{}
	for i, bin := range bins {
		out, err := exec.Command(bin, "sim", "--seed", "1", "--json").Output()
		if err != nil {
			t.Fatalf("%s sim: %v", bin, err)
		}
		hashes[i] = map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			var r struct {
				Scenario  string `json:"scenario"`
				TraceHash string `json:"trace_hash"`
			}
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("decode %q: %v", line, err)
			}
			hashes[i][r.Scenario] = r.TraceHash
		}
	}
	for s, h := range hashes[0] {
		if hashes[1][s] != h {
			t.Errorf("scenario %s seed 1: trace hash %s with one build, %s with another: protobuf text or an error string reaches the trace", s, h, hashes[1][s])
		}
	}
}

// detrandSeed computes what protobuf-go's internal/detrand derives from the
// executable at path: fnv-64 over its size and eight 64-byte samples.
func detrandSeed(t *testing.T, path string) uint64 {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	var buf [64]byte
	h := fnv.New64()
	binary.LittleEndian.PutUint64(buf[:8], uint64(fi.Size()))
	h.Write(buf[:8])
	for i := int64(0); i < 8; i++ {
		if _, err := f.ReadAt(buf[:], i*fi.Size()/8); err != nil {
			t.Fatal(err)
		}
		h.Write(buf[:])
	}
	return h.Sum64()
}
