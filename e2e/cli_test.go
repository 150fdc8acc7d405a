package e2e

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// run runs the binary and returns stdout, stderr and the exit status.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("multiraft %v did not finish in 30s", args)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

func TestCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster of processes")
	}
	dir := t.TempDir()
	cmd := exec.Command(bin, "cluster", "--stores", "3", "--data", filepath.Join(dir, "data"), "--pd-port", "0",
		"--store-port", "0", "--split-keys", "m", "--tick", "20ms", "--heartbeat", "200ms")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pdc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		re := regexp.MustCompile(`ready: PD (\S+)`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				pdc <- m[1]
			}
		}
	}()
	var pd string
	select {
	case pd = <-pdc:
	case <-time.After(60 * time.Second):
		t.Fatalf("cluster not ready in 60s: %s", stderr.String())
	}

	expect := func(wantCode int, wantOut string, args ...string) string {
		t.Helper()
		out, errs, code := run(t, append([]string{"kv", "--pd", pd}, args...)...)
		if code != wantCode || !strings.Contains(out+errs, wantOut) {
			t.Fatalf("multiraft kv %v: exit %d, stdout %q, stderr %q; want exit %d and %q", args, code, out, errs, wantCode, wantOut)
		}
		return out
	}
	expect(0, "OK version 1", "put", "apple", "red")
	expect(0, "OK version 1", "put", "zebra", "stripes")
	expect(0, "OK version 2", "put", "apple", "green")
	expect(0, "green", "get", "apple")
	expect(3, "not found", "get", "pear")
	if out := expect(0, "apple\tgreen", "scan"); !strings.Contains(out, "zebra\tstripes") {
		t.Fatalf("scan missed a region: %q", out)
	}
	expect(0, "zebra", "scan", "n")
	expect(0, "OK version 3", "cas", "apple", "2", "yellow")
	expect(3, "its version is 3", "cas", "apple", "2", "blue")
	expect(0, `["m",+inf)`, "regions")
	expect(0, "up", "stores")
	expect(0, "OK deleted", "delete", "zebra")

	// Bad input: usage errors exit 2 with a message, nothing changes.
	expect(2, "put needs KEY VALUE", "put", "onlykey")
	expect(2, `unknown command "frobnicate"`, "frobnicate")
	expect(2, "is not a number", "cas", "apple", "x", "v")
	expect(2, "is not a number", "move", "one", "2", "3")
	expect(1, "store 9 is unknown", "move", "1", "1", "9")
	expect(1, "region 999 is unknown", "transfer-leader", "999", "1")
	expect(0, "yellow", "get", "apple")
	if _, errs, code := run(t, "kv", "--pd", "127.0.0.1:1", "--timeout", "1s", "get", "x"); code != 1 || !strings.Contains(errs, "unreachable") {
		t.Fatalf("kv against no PD: exit %d, %q; want 1 and \"unreachable\"", code, errs)
	}
	if _, errs, code := run(t, "kv", "--bogus"); code != 2 || !strings.Contains(errs, "flag provided but not defined") {
		t.Fatalf("kv --bogus: exit %d, %q", code, errs)
	}
	for _, c := range []string{"pd", "store", "kv", "cluster", "bench"} {
		if _, errs, code := run(t, c, "--help"); code != 0 || !strings.Contains(errs, "usage: multiraft "+c) {
			t.Fatalf("%s --help: exit %d, %q", c, code, errs)
		}
	}
	// A store whose data directory belongs to this cluster cannot join
	// another one; a second PD on a taken port says so.
	other := t.TempDir()
	_, errs, code := run(t, "pd", "--addr", pd, "--http", "", "--data", other)
	if code != 1 || !strings.Contains(errs, "already in use") {
		t.Fatalf("pd on a taken port: exit %d, %q", code, errs)
	}
	p2 := start(t, "pd2", filepath.Join(other, "pd2.log"), "pd", "--addr", "127.0.0.1:0", "--http", "", "--data", filepath.Join(other, "pd"))
	_, errs, code = run(t, "store", "--id", "1", "--addr", "127.0.0.1:0", "--pd", p2.addr, "--data", filepath.Join(dir, "data", "store1"), "--pd-timeout", "5s")
	if code != 1 || !strings.Contains(errs, "belongs to cluster") {
		t.Fatalf("store with another cluster's data: exit %d, %q", code, errs)
	}
	_, errs, code = run(t, "store", "--id", "7", "--addr", "127.0.0.1:0", "--pd", p2.addr, "--data", filepath.Join(other, "s7"), "--pd-timeout", "5s")
	if code != 1 || !strings.Contains(errs, "not in the cluster layout") {
		t.Fatalf("store unknown to PD: exit %d, %q", code, errs)
	}

	// SIGTERM stops the whole tree cleanly.
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("cluster exited with %v after SIGTERM: %s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("cluster did not stop within 30s of SIGTERM")
	}
	logs, _ := os.ReadFile(filepath.Join(dir, "data", "store1.log"))
	if !strings.Contains(string(logs), "store: stopped") {
		t.Fatalf("store 1 did not stop cleanly:\n%s", tail(string(logs), 10))
	}
}
