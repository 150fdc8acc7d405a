package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
)

// errHelp: --help was asked for and printed; the command exits 0.
var errHelp = errors.New("help")

// newFlags is a flag set whose usage names the command and says what it
// does.
func newFlags(name, args, about string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: multiraft %s [flags]%s\n\n%s\n\nflags:\n", name, args, about)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args; errHelp for --help, errFlagsReported for a bad flag
// (already printed with the usage).
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return errFlagsReported
	}
	return nil
}

// exitCode turns a command's error into its exit status, printing it.
func exitCode(name string, err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, errHelp):
		return 0
	case errors.Is(err, errFlagsReported):
		return 2
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "multiraft %s: %v\n", name, err)
		return 2
	}
	fmt.Fprintf(stderr, "multiraft %s: %v\n", name, err)
	return 1
}

// errUsage marks an error in how a command was called (exit status 2).
var errUsage = errors.New("usage")

func usageErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

// logFlags adds --log-level and --log-format.
type logFlags struct{ level, format string }

func (l *logFlags) add(fs *flag.FlagSet) {
	fs.StringVar(&l.level, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&l.format, "log-format", "text", "log format: text or json (to stderr)")
}

func (l *logFlags) logger(stderr io.Writer) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(l.level)); err != nil {
		return nil, usageErr("--log-level %q: want debug, info, warn or error", l.level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch l.format {
	case "text":
		return slog.New(slog.NewTextHandler(stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(stderr, opts)), nil
	}
	return nil, usageErr("--log-format %q: want text or json", l.format)
}

// parseIDs parses "1,2,3" or a count "3" (meaning 1..3).
func parseIDs(s string) ([]uint64, error) {
	if !strings.Contains(s, ",") {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil || n == 0 || n > 1000 {
			return nil, usageErr("--stores %q: want a count (1-1000) or a list of ids like 1,2,3", s)
		}
		ids := make([]uint64, n)
		for i := range ids {
			ids[i] = uint64(i + 1)
		}
		return ids, nil
	}
	var ids []uint64
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
		if err != nil || n == 0 {
			return nil, usageErr("--stores %q: %q is not a store id", s, f)
		}
		ids = append(ids, n)
	}
	return ids, nil
}

// splitList parses "a,b,c" into keys ("" = none).
func splitList(s string) [][]byte {
	if s == "" {
		return nil
	}
	var out [][]byte
	for _, k := range strings.Split(s, ",") {
		out = append(out, []byte(k))
	}
	return out
}

func stderrOr(w io.Writer) io.Writer {
	if w == nil {
		return os.Stderr
	}
	return w
}
