package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/multiraft/multiraft/kvclient"
)

const benchAbout = `Runs a closed-loop load against a multiraft cluster (through kvclient) or an
etcd cluster (through etcd's Go client, --target etcd): --clients goroutines,
each issuing one operation at a time, for --duration or --count operations.
Reads are linearizable in both (ReadIndex in multiraft, etcd's default Get).
Prints throughput and latency percentiles.`

// benchOptions is what the flags ask for.
type benchOptions struct {
	target      string
	pd          string
	endpoints   string
	clients     int
	conns       int
	keySize     int
	valueSize   int
	keys        int
	dist        string
	readPercent int
	duration    time.Duration
	count       int64
	timeout     time.Duration
	preload     bool
}

// driver is one client connection of the system under test.
type driver interface {
	put(ctx context.Context, key, value []byte) error
	get(ctx context.Context, key []byte) error
	close()
}

type mrDriver struct{ c *kvclient.Client }

func (d mrDriver) put(ctx context.Context, k, v []byte) error {
	_, err := d.c.Put(ctx, k, v)
	return err
}
func (d mrDriver) get(ctx context.Context, k []byte) error { _, err := d.c.Get(ctx, k); return err }
func (d mrDriver) close()                                  { d.c.Close() }

type etcdDriver struct{ c *clientv3.Client }

func (d etcdDriver) put(ctx context.Context, k, v []byte) error {
	_, err := d.c.Put(ctx, string(k), string(v))
	return err
}
func (d etcdDriver) get(ctx context.Context, k []byte) error {
	_, err := d.c.Get(ctx, string(k))
	return err
}
func (d etcdDriver) close() { d.c.Close() }

func benchMain(args []string, stdout, stderr io.Writer) error {
	var o benchOptions
	fs := newFlags("bench", "", benchAbout, stderr)
	fs.StringVar(&o.target, "target", "multiraft", "system under test: multiraft or etcd")
	fs.StringVar(&o.pd, "pd", "127.0.0.1:2379", "multiraft: PD's address")
	fs.StringVar(&o.endpoints, "endpoints", "http://127.0.0.1:23791,http://127.0.0.1:23792,http://127.0.0.1:23793", "etcd: client endpoints")
	fs.IntVar(&o.clients, "clients", 1, "concurrent clients (goroutines, one operation at a time each)")
	fs.IntVar(&o.conns, "conns", 0, "client connections shared by the clients (0: min(clients, 100))")
	fs.IntVar(&o.keySize, "key-size", 8, "key size in bytes")
	fs.IntVar(&o.valueSize, "value-size", 256, "value size in bytes")
	fs.IntVar(&o.keys, "keys", 100000, "number of distinct keys")
	fs.StringVar(&o.dist, "dist", "uniform", "key distribution: uniform or zipfian")
	fs.IntVar(&o.readPercent, "read-percent", 0, "percentage of operations that are (linearizable) reads")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to run (ignored with --count)")
	fs.Int64Var(&o.count, "count", 0, "run this many operations instead of --duration")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "per-operation timeout")
	fs.BoolVar(&o.preload, "preload", false, "write every key once before measuring (so reads find values)")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return usageErr("unexpected argument %q", fs.Arg(0))
	case o.target != "multiraft" && o.target != "etcd":
		return usageErr("--target %q: want multiraft or etcd", o.target)
	case o.dist != "uniform" && o.dist != "zipfian":
		return usageErr("--dist %q: want uniform or zipfian", o.dist)
	case o.clients < 1 || o.keySize < 1 || o.keys < 1 || o.valueSize < 0:
		return usageErr("--clients, --key-size and --keys must be positive")
	case o.readPercent < 0 || o.readPercent > 100:
		return usageErr("--read-percent must be 0..100")
	}
	if o.conns <= 0 {
		o.conns = min(o.clients, 100)
	}
	drivers, err := connect(o)
	if err != nil {
		return err
	}
	defer func() {
		for _, d := range drivers {
			d.close()
		}
	}()
	if o.preload {
		if err := preload(o, drivers); err != nil {
			return err
		}
	}
	res := runLoad(o, drivers)
	res.print(stdout, o)
	if res.ops == 0 {
		return errors.New("no operation succeeded")
	}
	return nil
}

func connect(o benchOptions) ([]driver, error) {
	var out []driver
	for i := 0; i < o.conns; i++ {
		var d driver
		switch o.target {
		case "multiraft":
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			c, err := kvclient.New(ctx, kvclient.Config{PD: o.pd})
			cancel()
			if err != nil {
				return out, err
			}
			d = mrDriver{c}
		case "etcd":
			c, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(o.endpoints, ","), DialTimeout: 5 * time.Second})
			if err != nil {
				return out, fmt.Errorf("etcd: %w", err)
			}
			d = etcdDriver{c}
		}
		out = append(out, d)
	}
	return out, nil
}

func benchKey(o benchOptions, i uint64) []byte {
	k := fmt.Sprintf("%0*d", o.keySize, i)
	return []byte(k[len(k)-o.keySize:])
}

func preload(o benchOptions, drivers []driver) error {
	var next atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	value := make([]byte, o.valueSize)
	for w := 0; w < 256; w++ {
		wg.Add(1)
		go func(d driver) {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(o.keys) {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
				if err := d.put(ctx, benchKey(o, uint64(i)), value); err != nil {
					firstErr.CompareAndSwap(nil, err)
				}
				cancel()
			}
		}(drivers[w%len(drivers)])
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return fmt.Errorf("preload: %w", err)
	}
	return nil
}

type benchResult struct {
	ops, errs int64
	elapsed   time.Duration
	lat       []time.Duration
	firstErr  string
}

func runLoad(o benchOptions, drivers []driver) benchResult {
	var ops, errs, issued atomic.Int64
	var firstErr atomic.Value
	lats := make([][]time.Duration, o.clients)
	deadline := time.Now().Add(o.duration)
	start := time.Now()
	var wg sync.WaitGroup
	for c := 0; c < o.clients; c++ {
		wg.Add(1)
		go func(c int, d driver) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(c), 7))
			var zipf *rand.Zipf
			if o.dist == "zipfian" {
				zipf = rand.NewZipf(r, 1.1, 1, uint64(o.keys-1))
			}
			value := make([]byte, o.valueSize)
			for i := range value {
				value[i] = byte('a' + r.IntN(26))
			}
			for {
				if o.count > 0 {
					if issued.Add(1) > o.count {
						return
					}
				} else if time.Now().After(deadline) {
					return
				}
				var k uint64
				if zipf != nil {
					k = zipf.Uint64()
				} else {
					k = r.Uint64N(uint64(o.keys))
				}
				key := benchKey(o, k)
				ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
				t0 := time.Now()
				var err error
				if r.IntN(100) < o.readPercent {
					err = d.get(ctx, key)
				} else {
					err = d.put(ctx, key, value)
				}
				d := time.Since(t0)
				cancel()
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				ops.Add(1)
				lats[c] = append(lats[c], d)
			}
		}(c, drivers[c%len(drivers)])
	}
	wg.Wait()
	res := benchResult{ops: ops.Load(), errs: errs.Load(), elapsed: time.Since(start)}
	for _, l := range lats {
		res.lat = append(res.lat, l...)
	}
	slices.Sort(res.lat)
	if s, ok := firstErr.Load().(string); ok {
		res.firstErr = s
	}
	return res
}

func (r benchResult) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(float64(len(r.lat)) * p)
	if i >= len(r.lat) {
		i = len(r.lat) - 1
	}
	return r.lat[i]
}

func (r benchResult) print(w io.Writer, o benchOptions) {
	mix := "puts"
	switch {
	case o.readPercent == 100:
		mix = "gets"
	case o.readPercent > 0:
		mix = fmt.Sprintf("%d%% gets", o.readPercent)
	}
	fmt.Fprintf(w, "target=%s clients=%d conns=%d %s key=%dB value=%dB keys=%d dist=%s\n",
		o.target, o.clients, o.conns, mix, o.keySize, o.valueSize, o.keys, o.dist)
	fmt.Fprintf(w, "ops=%d errors=%d elapsed=%.1fs throughput=%.0f ops/s p50=%s p99=%s p99.9=%s\n",
		r.ops, r.errs, r.elapsed.Seconds(), float64(r.ops)/r.elapsed.Seconds(),
		fmtDur(r.pct(0.50)), fmtDur(r.pct(0.99)), fmtDur(r.pct(0.999)))
	if r.firstErr != "" {
		fmt.Fprintf(w, "first error: %s\n", r.firstErr)
	}
}

func fmtDur(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }

func runBench(args []string, stdout, stderr io.Writer) int {
	return exitCode("bench", benchMain(args, stdout, stderr), stderr)
}
