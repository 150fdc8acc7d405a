package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// bin is the multiraft binary, built once for the package's tests.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "multiraft-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "multiraft")
	build := exec.Command("go", "build", "-o", bin, "../cmd/multiraft")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build multiraft:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is one multiraft process of a test.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	addr string // from its "serving ... on ADDR" line
	done chan struct{}
	mu   sync.Mutex
	out  strings.Builder // stdout and stderr, for failure messages
}

var servingRE = regexp.MustCompile(`serving cluster (\d+) on (\S+)`)

// start runs the binary with args and waits (bounded) for its serving line.
func start(t *testing.T, name, logPath string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = logf
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.out.WriteString(line + "\n")
			p.mu.Unlock()
			if m := servingRE.FindStringSubmatch(line); m != nil {
				addr <- m[2]
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() { p.cmd.Wait(); logf.Close(); close(p.done) }()
	t.Cleanup(func() { p.kill() })
	select {
	case p.addr = <-addr:
		return p
	case <-p.done:
		log, _ := os.ReadFile(logPath)
		t.Fatalf("%s exited before serving:\n%s", name, tail(string(log), 20))
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not start serving in 30s", name)
	}
	return nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// kill sends SIGKILL and waits.
func (p *proc) kill() {
	if p == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Kill()
	<-p.done
}

// term sends SIGTERM and waits (bounded); it reports whether the process
// exited with status 0.
func (p *proc) term() error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.kill()
		return fmt.Errorf("%s did not stop in 15s after SIGTERM", p.name)
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		return fmt.Errorf("%s exited with status %d after SIGTERM", p.name, code)
	}
	return nil
}

// waitFor polls cond every 20ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out after %v waiting for %s", d, what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
