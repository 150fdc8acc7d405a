package main

import (
	"fmt"
	"io"
	"os"
	"time"
)

// progress shows how a sweep goes on stderr: runs done of all, failures,
// runs per second and the time left. On a terminal it is one line
// rewritten in place (at most five times a second) and left standing at
// the end; elsewhere (a log file, CI) a line is printed every ten seconds.
// Anything else written to the terminal goes through clearing writers,
// which take the line away first.
type progress struct {
	out          io.Writer
	tty          bool
	total        int
	done, failed int
	now          func() time.Time
	start, last  time.Time
	shown        bool // the line is on the terminal now
	logged       int  // runs done at the last line printed (not on a terminal); -1: none
	off          bool // nothing is shown (a single run)
}

// newProgress returns the progress of total runs, written to out (a
// terminal when tty).
func newProgress(out io.Writer, tty bool, total int, now func() time.Time) *progress {
	t := now()
	return &progress{out: out, tty: tty, total: total, now: now, start: t, last: t, logged: -1, off: total <= 1}
}

// completed counts a finished run and shows the line when it is time to.
func (p *progress) completed(ok bool) {
	p.done++
	if !ok {
		p.failed++
	}
	if p.off {
		return
	}
	t := p.now()
	every := 10 * time.Second
	if p.tty {
		every = 200 * time.Millisecond
	}
	if t.Sub(p.last) < every && (!p.tty || p.done < p.total) {
		return
	}
	p.last = t
	if p.tty {
		fmt.Fprintf(p.out, "\r\033[K%s", p.line(t))
		p.shown = true
	} else {
		fmt.Fprintln(p.out, p.line(t))
		p.logged = p.done
	}
}

// line renders the progress at time t.
func (p *progress) line(t time.Time) string {
	elapsed := t.Sub(p.start)
	rate := 0.0
	if elapsed > 0 {
		rate = float64(p.done) / elapsed.Seconds()
	}
	eta := "?"
	if rate > 0 {
		eta = time.Duration(float64(p.total-p.done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	return fmt.Sprintf("progress: %d/%d runs, %d failed, %.1f runs/s, elapsed %v, ETA %s",
		p.done, p.total, p.failed, rate, elapsed.Round(time.Second), eta)
}

// clear takes the line off the terminal.
func (p *progress) clear() {
	if p.shown {
		fmt.Fprint(p.out, "\r\033[K")
		p.shown = false
	}
}

// finish shows the final line and leaves it standing: on a terminal, or
// in a log that had progress lines (unless the last one was final).
func (p *progress) finish() {
	if p.off || (!p.tty && (p.logged < 0 || p.logged == p.done)) {
		return
	}
	p.clear()
	fmt.Fprintln(p.out, p.line(p.now()))
	p.logged = p.done
	if p.tty {
		p.off = true // the last line stands; show nothing more
	}
}

// clearing is a writer that takes the progress line away before writing.
type clearing struct {
	p *progress
	w io.Writer
}

func (c clearing) Write(b []byte) (int, error) {
	c.p.clear()
	return c.w.Write(b)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
