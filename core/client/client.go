// Package client is the routing and retry logic of a multiraft KV client, as
// a deterministic, sans-I/O state machine shared by the simulator's client
// actors and the real client.
//
// A Client keeps a region cache (sorted by start key, with the leader it
// believes in per region), turns each submitted Op into KvRequests sent to
// the store that leads the region owning the key, asks PD (GetRegionRequest)
// for regions it does not know, and reacts to every region error: NotLeader
// (go to the hinted leader, or the next peer), EpochNotMatch (cache the
// current regions), KeyNotInRegion and RegionNotFound (drop the entry, ask
// PD), StoreBusy and StaleCommand (back off), InvalidRequest (fail at once:
// retrying cannot help), SessionExpired (see below).
//
// Writes are exactly-once: every attempt of a write carries the client's
// session and the write's sequence in it, so a region applies it once
// however many copies reach it, and answers repeats from its session table.
// A region error is definite only for the copy of the request that got it:
// the network may hold another copy (a duplicate, or an attempt that timed
// out) that applies later. So once a write has been sent, it ends OK or,
// when its deadline passes without an answer that says it applied,
// Ambiguous; it is retried (in the same session, with the same sequence)
// until then, whatever MaxAttempts says. It ends Failed only when it was
// never sent, or a store refused its content on the write's first attempt
// (InvalidRequest: every copy is refused alike; one that depends on the
// region's clock, a write started too far ahead of it, is not, and ends
// Ambiguous, as does a refusal of a later attempt: an earlier one may have
// reached a store that checks sizes against other limits). A late answer
// to an earlier attempt of a write still in flight counts: an OK from any
// copy means it applied.
//
// When a region no longer knows the session (SessionExpired: sessions
// expire per region, so a client busy elsewhere can find its session gone
// in a region it has not written to for a while), the client opens a new
// session. No copy of the refused write will apply in the old session
// (a region's refusals are final), but one may have applied before: the
// network duplicates requests, so even a write's only attempt may have
// applied once and been refused on a second copy. So the write is sent
// again, at once, in the new session only when the refusal says it never
// applied (SessionExpired.never_applied: the region's marker of the session
// knows every write of it the client may wait for); otherwise it ends
// Ambiguous, as resending it could apply it twice.
//
// Reads are retried within Config.MaxAttempts store attempts (per op, and
// per sub-scan of a scan); everything is bounded by Config.OpTimeout, with
// exponential backoff (BackoffBase doubling up to BackoffMax, equal jitter
// drawn from Env.Rand) between attempts. A scan over several regions is
// stitched from one sub-scan per region, each routed and retried on its own.
//
// The client does no I/O of its own: it sends through Env.Net, reads time
// from Env.Clock and draws jitter from Env.Rand. The driver calls Submit,
// Receive (for every KvResponse and GetRegionResponse addressed to the
// client) and Tick (often, say every 5-10 ms of its clock), and collects
// results with Completed. The same inputs always give the same sends.
package client

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"time"

	"github.com/multiraft/multiraft/core"
	"github.com/multiraft/multiraft/core/buggify"
	"github.com/multiraft/multiraft/core/pb"
)

// Config tunes a Client. Zero fields take the defaults noted.
type Config struct {
	ID uint64 // the client's own node id (Envelope.From)
	PD uint64 // PD's node id

	AttemptTimeout time.Duration // one store or PD attempt; default 2s
	OpTimeout      time.Duration // a whole op; default 10s
	MaxAttempts    int           // store attempts per op (per sub-scan for scans); default 20
	BackoffBase    time.Duration // first backoff; default 20ms
	BackoffMax     time.Duration // backoff cap; default 1s
}

// Defaults of Config.
const (
	DefaultAttemptTimeout = 2 * time.Second
	DefaultOpTimeout      = 10 * time.Second
	DefaultMaxAttempts    = 20
	DefaultBackoffBase    = 20 * time.Millisecond
	DefaultBackoffMax     = time.Second
)

func (c Config) withDefaults() Config {
	if c.AttemptTimeout <= 0 {
		c.AttemptTimeout = DefaultAttemptTimeout
	}
	if c.OpTimeout <= 0 {
		c.OpTimeout = DefaultOpTimeout
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = DefaultBackoffBase
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = DefaultBackoffMax
	}
	if c.BackoffMax < c.BackoffBase {
		c.BackoffMax = c.BackoffBase
	}
	return c
}

// OpKind is the kind of a KV operation.
type OpKind int

// The operation kinds. The zero OpKind is invalid.
const (
	Get OpKind = iota + 1
	Put
	Delete
	Scan
	Cas
)

func (k OpKind) String() string {
	switch k {
	case Get:
		return "get"
	case Put:
		return "put"
	case Delete:
		return "delete"
	case Scan:
		return "scan"
	case Cas:
		return "cas"
	}
	return fmt.Sprintf("OpKind(%d)", int(k))
}

// IsWrite reports whether k changes state (put, delete, cas). A write whose
// attempt gets no reply has an unknown outcome.
func (k OpKind) IsWrite() bool { return k == Put || k == Delete || k == Cas }

// Op is one KV operation. Get, Put, Delete and Cas use Key (non-empty); Put
// and Cas use Value; Cas writes only if the key's version equals
// ExpectedVersion (0: only if absent). Scan reads [Start, End) (empty End =
// +inf), at most Limit pairs (0 = no limit).
type Op struct {
	Kind            OpKind
	Key, Value      []byte
	ExpectedVersion uint64
	Start, End      []byte
	Limit           int
}

func cloneOp(op Op) Op {
	op.Key = bytes.Clone(op.Key)
	op.Value = bytes.Clone(op.Value)
	op.Start = bytes.Clone(op.Start)
	op.End = bytes.Clone(op.End)
	return op
}

// Outcome says what is known about an op's effect.
type Outcome int

// The outcomes. The zero Outcome is invalid.
const (
	// OK: the op took effect (writes) or was served (reads); results are set.
	OK Outcome = iota + 1
	// Failed: the op definitely did not take effect.
	Failed
	// Ambiguous: a write may or may not have taken effect, now or later.
	Ambiguous
)

func (o Outcome) String() string {
	switch o {
	case OK:
		return "ok"
	case Failed:
		return "failed"
	case Ambiguous:
		return "ambiguous"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Errors a Completion.Err wraps (test with errors.Is).
var (
	ErrInvalidOp       = errors.New("client: invalid op")
	ErrTimeout         = errors.New("client: no reply within the attempt timeout")
	ErrOpTimeout       = errors.New("client: op timeout")
	ErrTooManyAttempts = errors.New("client: too many attempts")
	ErrMalformedReply  = errors.New("client: malformed reply")
	ErrSessionExpired  = errors.New("client: session expired")
)

// Completion is the end of one op.
type Completion struct {
	ID      uint64
	Op      Op
	Outcome Outcome
	Err     error // why, when Failed or Ambiguous

	Found        bool   // get
	Value        []byte // get
	Version      uint64 // get; put; cas (new version on success, current on failure)
	Deleted      bool   // delete
	CasSucceeded bool   // cas
	Pairs        []*pb.KvPair

	Attempts int // store attempts made

	// Writes: the session and sequence of the write's last attempts, the
	// identity a region applies it under (earlier ones, if any, were
	// vouched never applied). Empty for reads.
	Session  []byte
	Sequence uint64
}

// Stats counts what a client did, since New.
type Stats struct {
	Submitted, OK, Failed, Ambiguous uint64

	Attempts uint64 // KvRequests sent
	Retries  uint64 // of which not the first of their op (or sub-scan)
	Timeouts uint64 // store attempts unanswered within AttemptTimeout
	Backoffs uint64

	NotLeader, EpochNotMatch, KeyNotInRegion, RegionNotFound   uint64
	StoreBusy, StaleCommand, InvalidRequest, OtherRegionErrors uint64
	SessionExpired                                             uint64
	SessionResends                                             uint64 // writes sent again in a new session (their region vouched they never applied)
	Sessions                                                   uint64 // sessions opened (1 + one per expiry)
	Malformed                                                  uint64

	PDLookups, PDTimeouts, PDErrors, PDStale uint64

	LateReplies uint64 // replies to no live attempt, ignored
}

// maxImmediate is how many retries in a row may skip the backoff (NotLeader
// with a new hint, EpochNotMatch that changed the route, KeyNotInRegion):
// beyond, a ping-pong between stale views backs off like any other retry.
const maxImmediate = 2

type phase int

const (
	phaseIdle    phase = iota // between steps (transient)
	phaseLookup               // a GetRegionRequest to PD is outstanding
	phaseStore                // a KvRequest to a store is outstanding
	phaseBackoff              // sleeping until wakeAt
)

// attempt is the store request an op has outstanding (or had last).
type attempt struct {
	regionID  uint64
	epoch     *pb.Epoch
	store     uint64
	regionEnd []byte // end of the region routed by
	subEnd    []byte // scans: end_key sent (empty = +inf)
}

type opState struct {
	id       uint64
	op       Op
	deadline time.Time
	done     bool

	// Writes: the session and sequence every attempt carries, so a region
	// applies the write once however many attempts reach it; started is
	// when it was first sent in that session (regions refuse copies older
	// than their session lifetime); sent once any attempt went out (a copy
	// of it may apply yet); earlier holds the request ids of past attempts,
	// whose answers still count.
	session []byte
	seq     uint64
	started time.Time
	sent    bool
	earlier []uint64
	// timedOut: an attempt of the write got no answer in time (coverage
	// only: buggify.ClockRefusalAfterTimeout).
	timedOut bool

	phase    phase
	reqID    uint64    // outstanding request id (store or PD), 0 if none
	timeout  time.Time // of the outstanding request
	wakeAt   time.Time // phaseBackoff
	pdKey    []byte    // phaseLookup: the key asked about
	att      attempt
	attempts int // store attempts in all
	budget   int // store attempts of this op, or of the current sub-scan
	backoffs int // backoffs of this op, or of the current sub-scan
	immed    int // consecutive retries without backoff
	lastErr  error

	// scans
	cursor    []byte
	remaining int // pairs still wanted when limited
	pairs     []*pb.KvPair

	res Completion // results of a successful op
}

// routeKey is the key the op's next request is routed by.
func (o *opState) routeKey() []byte {
	if o.op.Kind == Scan {
		return o.cursor
	}
	return o.op.Key
}

// Client is the routing and retry state machine. It is not safe for
// concurrent use; its driver serialises calls.
type Client struct {
	env   core.Env
	cfg   Config
	log   *slog.Logger
	cache regionCache

	nextOp  uint64
	nextReq uint64
	session []byte              // the current session's id
	nextSeq uint64              // the next write's sequence in it
	active  []*opState          // live ops in id order
	tickOps []*opState          // Tick's copy of active, kept from one tick to the next
	reqs    map[uint64]*opState // outstanding request id -> op (lookup only)
	earlier map[uint64]*opState // past attempt ids of live writes -> op
	done    []Completion
	stats   Stats
}

// New returns a client that talks through env.Net and reads env.Clock;
// env.Rand (optional) supplies backoff jitter and env.Log (optional) logs.
func New(env core.Env, cfg Config) *Client {
	log := env.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{
		env:     env,
		cfg:     cfg.withDefaults(),
		log:     log.With("client", cfg.ID),
		reqs:    make(map[uint64]*opState),
		earlier: make(map[uint64]*opState),
	}
	c.newSession()
	return c
}

// newSession starts a session: 128 random bits from Env.Rand (or, without
// one, the client id and the clock), writes numbered from 1.
func (c *Client) newSession() {
	var b [16]byte
	if r := c.env.Rand; r != nil {
		binary.BigEndian.PutUint64(b[:8], r.Uint64())
		binary.BigEndian.PutUint64(b[8:], r.Uint64())
	} else {
		binary.BigEndian.PutUint64(b[:8], c.cfg.ID)
		binary.BigEndian.PutUint64(b[8:], uint64(c.env.Clock.Now().UnixNano()))
	}
	c.session, c.nextSeq = b[:], 1
	c.stats.Sessions++
}

// lowestWaiting is the lowest sequence of session's writes still in flight
// (for the current session, at most the next sequence): a region may drop
// the results of lower ones, so it must never pass a write of that session
// whose client still waits, whichever write's attempt carries it.
func (c *Client) lowestWaiting(session []byte) uint64 {
	low := uint64(math.MaxUint64)
	if bytes.Equal(session, c.session) {
		low = c.nextSeq
	}
	for _, o := range c.active {
		if o.seq != 0 && o.seq < low && bytes.Equal(o.session, session) {
			low = o.seq
		}
	}
	return low
}

// assignSeq gives write o the next sequence of the current session.
func (c *Client) assignSeq(o *opState) {
	o.session, o.seq = c.session, c.nextSeq
	o.started = time.Time{}
	c.nextSeq++
}

// Config returns the client's configuration with defaults filled in.
func (c *Client) Config() Config { return c.cfg }

// Submit starts op and returns its id (the Completion's ID). It sends the
// op's first request at once; an invalid op completes as Failed at once.
func (c *Client) Submit(op Op) uint64 {
	c.nextOp++
	o := &opState{id: c.nextOp, op: cloneOp(op)}
	c.stats.Submitted++
	if err := validate(o.op); err != nil {
		c.complete(o, Failed, err)
		return o.id
	}
	now := c.env.Clock.Now()
	o.deadline = now.Add(c.cfg.OpTimeout)
	if op.Kind.IsWrite() {
		c.assignSeq(o)
	}
	if op.Kind == Scan {
		o.cursor = o.op.Start
		o.remaining = op.Limit
	}
	c.active = append(c.active, o)
	c.route(o, now)
	return o.id
}

func validate(op Op) error {
	switch op.Kind {
	case Get, Put, Delete, Cas:
		if len(op.Key) == 0 {
			return fmt.Errorf("%w: %s with an empty key", ErrInvalidOp, op.Kind)
		}
	case Scan:
		if len(op.End) != 0 && bytes.Compare(op.End, op.Start) <= 0 {
			return fmt.Errorf("%w: scan end %q <= start %q", ErrInvalidOp, op.End, op.Start)
		}
		if op.Limit < 0 || op.Limit > math.MaxUint32 {
			return fmt.Errorf("%w: scan limit %d", ErrInvalidOp, op.Limit)
		}
	default:
		return fmt.Errorf("%w: unknown kind %d", ErrInvalidOp, int(op.Kind))
	}
	return nil
}

// Completed returns the ops completed since the last call, in completion
// order.
func (c *Client) Completed() []Completion {
	out := c.done
	c.done = nil
	return out
}

// Pending returns the number of submitted ops not yet completed.
func (c *Client) Pending() int { return len(c.active) }

// Stats returns the counters.
func (c *Client) Stats() Stats { return c.stats }

// Receive handles a reply from a store (KvResponse) or PD
// (GetRegionResponse). Replies to no live attempt are ignored; other bodies
// are ignored.
func (c *Client) Receive(m *pb.Envelope) {
	switch b := m.GetBody().(type) {
	case *pb.Envelope_KvResponse:
		if b.KvResponse != nil {
			c.onKvResponse(m.GetFrom(), b.KvResponse)
		}
	case *pb.Envelope_GetRegionResponse:
		if b.GetRegionResponse != nil {
			c.onRegionResponse(b.GetRegionResponse)
		}
	default:
		c.log.Debug("ignoring message", "from", m.GetFrom(), "type", fmt.Sprintf("%T", b))
	}
}

// Tick handles op deadlines, attempt timeouts and the end of backoffs, in op
// id order, at the clock's current time.
func (c *Client) Tick() {
	now := c.env.Clock.Now()
	// A copy: handling an op may complete it (and drop it from active).
	ops := append(c.tickOps[:0], c.active...)
	for _, o := range ops {
		if o.done {
			continue
		}
		if !now.Before(o.deadline) {
			c.giveUp(o)
			continue
		}
		switch o.phase {
		case phaseStore:
			if !now.Before(o.timeout) {
				c.onStoreTimeout(o, now)
			}
		case phaseLookup:
			if !now.Before(o.timeout) {
				c.stats.PDTimeouts++
				c.endRequest(o)
				o.lastErr = fmt.Errorf("%w: PD did not answer about key %q", ErrTimeout, o.pdKey)
				c.retryLater(o, now)
			}
		case phaseBackoff:
			if !now.Before(o.wakeAt) {
				o.phase = phaseIdle
				c.route(o, now)
			}
		}
	}
	clear(ops)
	c.tickOps = ops[:0]
}

// route sends the op's next request: to the store leading the region of its
// route key if cached, else to PD.
func (c *Client) route(o *opState, now time.Time) {
	if !now.Before(o.deadline) {
		c.giveUp(o)
		return
	}
	if c.outOfAttempts(o) {
		c.exhausted(o)
		return
	}
	key := o.routeKey()
	if e := c.cache.find(key); e != nil {
		c.sendKv(o, e, now)
		return
	}
	c.askPD(o, key, now)
}

func (c *Client) newRequest(o *opState, now time.Time, ph phase) uint64 {
	c.nextReq++
	o.reqID = c.nextReq
	o.phase = ph
	o.timeout = now.Add(c.cfg.AttemptTimeout)
	c.reqs[o.reqID] = o
	return o.reqID
}

// endRequest forgets the op's outstanding request: a reply to it is late.
// A write's store attempts are kept as earlier attempts, whose successful
// answers still complete it.
func (c *Client) endRequest(o *opState) {
	if o.reqID != 0 {
		delete(c.reqs, o.reqID)
		if o.phase == phaseStore && o.seq != 0 && !o.done {
			o.earlier = append(o.earlier, o.reqID)
			c.earlier[o.reqID] = o
		}
		o.reqID = 0
	}
	o.phase = phaseIdle
}

func (c *Client) askPD(o *opState, key []byte, now time.Time) {
	id := c.newRequest(o, now, phaseLookup)
	o.pdKey = key
	c.stats.PDLookups++
	c.env.Net.Send(pb.NewEnvelope(c.cfg.ID, c.cfg.PD, &pb.GetRegionRequest{RequestId: id, Key: key}))
}

// minEnd returns the smaller of two range ends, empty meaning +inf.
func minEnd(a, b []byte) []byte {
	switch {
	case len(a) == 0:
		return b
	case len(b) == 0:
		return a
	case bytes.Compare(a, b) <= 0:
		return a
	}
	return b
}

func (c *Client) sendKv(o *opState, e *entry, now time.Time) {
	r := e.region
	store := e.target()
	id := c.newRequest(o, now, phaseStore)
	ep := r.GetEpoch()
	// The request, its header and session are one allocation (one per
	// attempt).
	a := new(struct {
		req     pb.KvRequest
		header  pb.RequestHeader
		epoch   pb.Epoch
		session pb.Session
	})
	a.epoch.ConfVer, a.epoch.Version = ep.GetConfVer(), ep.GetVersion()
	a.header.RegionId, a.header.RegionEpoch = r.GetId(), &a.epoch
	req := &a.req
	req.RequestId, req.Header = id, &a.header
	o.att = attempt{regionID: r.GetId(), epoch: req.Header.RegionEpoch, store: store, regionEnd: r.GetEndKey()}
	switch op := &o.op; op.Kind {
	case Get:
		req.Op = &pb.KvRequest_Get{Get: &pb.GetRequest{Key: op.Key}}
	case Put:
		req.Op = &pb.KvRequest_Put{Put: &pb.PutRequest{Key: op.Key, Value: op.Value}}
	case Delete:
		req.Op = &pb.KvRequest_Delete{Delete: &pb.DeleteRequest{Key: op.Key}}
	case Cas:
		req.Op = &pb.KvRequest_Cas{Cas: &pb.CasRequest{Key: op.Key, ExpectedVersion: op.ExpectedVersion, Value: op.Value}}
	case Scan:
		o.att.subEnd = minEnd(op.End, r.GetEndKey())
		req.Op = &pb.KvRequest_Scan{Scan: &pb.ScanRequest{
			StartKey: o.cursor, EndKey: o.att.subEnd, Limit: uint32(o.remaining),
		}}
	}
	if o.seq != 0 {
		if o.started.IsZero() {
			o.started = now
		}
		a.session.Id, a.session.Sequence, a.session.Lowest = o.session, o.seq, c.lowestWaiting(o.session)
		a.session.StartedMs = uint64(o.started.UnixMilli())
		req.Session = &a.session
		o.sent = true
	}
	if o.budget > 0 {
		c.stats.Retries++
	}
	o.attempts++
	o.budget++
	c.stats.Attempts++
	c.env.Net.Send(pb.NewEnvelope(c.cfg.ID, store, req))
}

// retryNow retries the op at once after a definite failure that gave the
// client a better route (a new leader hint, fresher regions); beyond
// maxImmediate such retries in a row it backs off like any other.
func (c *Client) retryNow(o *opState, now time.Time) {
	if c.outOfAttempts(o) {
		c.exhausted(o)
		return
	}
	if o.immed < maxImmediate {
		o.immed++
		c.route(o, now)
		return
	}
	c.retryLater(o, now)
}

// retryLater schedules the op's next step after a backoff.
func (c *Client) retryLater(o *opState, now time.Time) {
	if c.outOfAttempts(o) {
		c.exhausted(o)
		return
	}
	o.immed = 0
	d := c.backoffDelay(o.backoffs)
	o.backoffs++
	c.stats.Backoffs++
	o.wakeAt = now.Add(d)
	if o.wakeAt.After(o.deadline) {
		o.wakeAt = o.deadline
	}
	o.phase = phaseBackoff
}

// backoffDelay is BackoffBase·2^n capped at BackoffMax, with equal jitter:
// uniform in [d/2, d].
func (c *Client) backoffDelay(n int) time.Duration {
	d := c.cfg.BackoffBase
	for i := 0; i < n && d < c.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, c.cfg.BackoffMax)
	half := d / 2
	if c.env.Rand == nil || d-half <= 0 {
		return d
	}
	return half + time.Duration(core.Intn(c.env.Rand, int(d-half)+1))
}

func (c *Client) onStoreTimeout(o *opState, now time.Time) {
	att := o.att
	c.endRequest(o)
	c.stats.Timeouts++
	if o.seq != 0 {
		o.timedOut = true
	}
	if e := c.cache.byID(att.regionID); e != nil {
		e.skip(att.store) // the store may be down: try another peer next
	}
	// A write may have applied; a retry with the same session and sequence
	// applies it at most once, and brings back its result.
	o.lastErr = fmt.Errorf("%w: store %d, region %d, after %v", ErrTimeout, att.store, att.regionID, c.cfg.AttemptTimeout)
	c.retryLater(o, now)
}

// giveUp ends an op whose deadline passed: Ambiguous for a write that was
// sent (a copy of it may apply yet), else Failed.
func (c *Client) giveUp(o *opState) {
	err := fmt.Errorf("%w after %v and %d attempts", ErrOpTimeout, c.cfg.OpTimeout, o.attempts)
	if o.lastErr != nil {
		err = fmt.Errorf("%w: last error: %w", err, o.lastErr)
	}
	c.complete(o, Failed, err)
}

// outOfAttempts reports whether op o has used its store attempts. A write
// that was sent has no such limit: it is retried until it is known to have
// applied or its deadline passes (giving up sooner would only turn a
// possible success into an unknown outcome).
func (c *Client) outOfAttempts(o *opState) bool {
	return o.budget >= c.cfg.MaxAttempts && !o.sent
}

// exhausted ends an op that used all its store attempts, each a definite
// failure.
func (c *Client) exhausted(o *opState) {
	err := fmt.Errorf("%w (%d)", ErrTooManyAttempts, o.budget)
	if o.lastErr != nil {
		err = fmt.Errorf("%w: last error: %w", err, o.lastErr)
	}
	c.complete(o, Failed, err)
}

func (c *Client) complete(o *opState, out Outcome, err error) {
	c.completeAs(o, out, err, false)
}

// completeAs ends op o. Unless definite, a Failed write that was sent is
// Ambiguous: a copy of one of its attempts may apply yet.
func (c *Client) completeAs(o *opState, out Outcome, err error, definite bool) {
	if out == Failed && o.sent && !definite {
		out = Ambiguous
		err = fmt.Errorf("%w (the write was sent and may apply yet: outcome unknown)", err)
	}
	c.endRequest(o)
	for _, id := range o.earlier {
		delete(c.earlier, id)
	}
	o.earlier = nil
	o.done = true
	if i := slices.Index(c.active, o); i >= 0 {
		c.active = slices.Delete(c.active, i, i+1)
	}
	comp := o.res
	comp.ID, comp.Op, comp.Outcome, comp.Attempts = o.id, o.op, out, o.attempts
	if out == OK {
		comp.Err = nil
	} else {
		comp = Completion{ID: o.id, Op: o.op, Outcome: out, Err: err, Attempts: o.attempts}
	}
	comp.Session, comp.Sequence = o.session, o.seq
	switch out {
	case OK:
		c.stats.OK++
	case Failed:
		c.stats.Failed++
	case Ambiguous:
		c.stats.Ambiguous++
	}
	c.done = append(c.done, comp)
}

func (c *Client) onRegionResponse(resp *pb.GetRegionResponse) {
	o := c.reqs[resp.GetRequestId()]
	if o == nil || o.phase != phaseLookup {
		c.stats.LateReplies++
		return
	}
	c.endRequest(o)
	now := c.env.Clock.Now()
	r := resp.GetRegion()
	switch {
	case resp.GetError() != "":
		o.lastErr = fmt.Errorf("PD: %s", resp.GetError())
	case r == nil:
		o.lastErr = fmt.Errorf("PD: no region for key %q", o.pdKey)
	case !validRegion(r) || !r.ContainsKey(o.pdKey):
		o.lastErr = fmt.Errorf("PD: region %d %s with %d peers for key %q",
			r.GetId(), r.RangeString(), len(r.GetPeers()), o.pdKey)
	default:
		c.cache.insert(r, resp.GetLeader(), nil)
		if c.cache.find(o.pdKey) != nil {
			c.route(o, now)
			return
		}
		// The cache holds a newer overlapping region: PD is behind (a
		// split it has not learned yet). Ask the region's store anyway,
		// without caching PD's view: it answers EpochNotMatch listing the
		// regions as they are now, the new one holding the key included.
		c.stats.PDStale++
		c.sendKv(o, &entry{region: r.CloneVT(), leader: resp.GetLeader()}, now)
		return
	}
	c.stats.PDErrors++
	c.log.Debug("PD lookup failed", "op", o.id, "err", o.lastErr)
	c.retryLater(o, now)
}

func (c *Client) onKvResponse(from uint64, resp *pb.KvResponse) {
	o := c.reqs[resp.GetRequestId()]
	if o == nil || o.phase != phaseStore {
		c.stats.LateReplies++
		if o = c.earlier[resp.GetRequestId()]; o != nil && !o.done && resp.GetRegionError() == nil && hasWriteResult(o, resp) {
			// An earlier attempt of a write in flight applied (or its
			// result was found in the session table): that is the answer.
			c.endRequest(o)
			c.onResult(o, from, resp, c.env.Clock.Now())
		}
		return
	}
	c.endRequest(o)
	now := c.env.Clock.Now()
	if re := resp.GetRegionError(); re != nil {
		c.onRegionError(o, re, now)
		return
	}
	c.onResult(o, from, resp, now)
}

// hasWriteResult reports whether resp carries the result write o expects.
func hasWriteResult(o *opState, resp *pb.KvResponse) bool {
	switch o.op.Kind {
	case Put:
		return resp.GetPut() != nil
	case Delete:
		return resp.GetDelete() != nil
	case Cas:
		return resp.GetCas() != nil
	}
	return false
}

// onResult takes a reply without a region error to op o's attempt.
func (c *Client) onResult(o *opState, from uint64, resp *pb.KvResponse, now time.Time) {
	switch o.op.Kind {
	case Get:
		g := resp.GetGet()
		if g == nil {
			c.malformed(o, from, resp, now)
			return
		}
		o.res.Found, o.res.Value, o.res.Version = g.GetFound(), bytes.Clone(g.GetValue()), g.GetVersion()
	case Put:
		p := resp.GetPut()
		if p == nil {
			c.malformed(o, from, resp, now)
			return
		}
		o.res.Version = p.GetVersion()
	case Delete:
		d := resp.GetDelete()
		if d == nil {
			c.malformed(o, from, resp, now)
			return
		}
		o.res.Deleted = d.GetDeleted()
	case Cas:
		cs := resp.GetCas()
		if cs == nil {
			c.malformed(o, from, resp, now)
			return
		}
		o.res.CasSucceeded, o.res.Version = cs.GetSucceeded(), cs.GetVersion()
	case Scan:
		s := resp.GetScan()
		if s == nil || !c.validScan(o, s.GetPairs()) || (s.GetMore() && len(s.GetPairs()) == 0) {
			c.malformed(o, from, resp, now)
			return
		}
		c.scanStep(o, s.GetPairs(), s.GetMore(), now)
		return
	}
	c.complete(o, OK, nil)
}

// validScan checks a sub-scan's pairs: inside [cursor, subEnd), strictly
// ascending, within the limit.
func (c *Client) validScan(o *opState, pairs []*pb.KvPair) bool {
	if o.remaining > 0 && len(pairs) > o.remaining {
		return false
	}
	var prev []byte
	for i, p := range pairs {
		k := p.GetKey()
		if p == nil || bytes.Compare(k, o.cursor) < 0 ||
			(len(o.att.subEnd) != 0 && bytes.Compare(k, o.att.subEnd) >= 0) ||
			(i > 0 && bytes.Compare(k, prev) <= 0) {
			return false
		}
		prev = k
	}
	return true
}

// scanStep takes a sub-scan's pairs and either completes the scan, asks the
// same region for more (the store cut its answer short), or moves on to
// the next region.
func (c *Client) scanStep(o *opState, pairs []*pb.KvPair, more bool, now time.Time) {
	for _, p := range pairs {
		o.pairs = append(o.pairs, p.CloneVT())
	}
	limited := o.op.Limit > 0
	if limited {
		o.remaining -= len(pairs)
	}
	if more && (!limited || o.remaining > 0) {
		o.cursor = append(bytes.Clone(pairs[len(pairs)-1].GetKey()), 0)
		o.budget, o.backoffs, o.immed, o.lastErr = 0, 0, 0, nil
		c.route(o, now)
		return
	}
	end := o.att.regionEnd
	if (limited && o.remaining <= 0) || len(end) == 0 ||
		(len(o.op.End) != 0 && bytes.Compare(end, o.op.End) >= 0) {
		o.res.Pairs = o.pairs
		c.complete(o, OK, nil)
		return
	}
	o.cursor = end
	o.budget, o.backoffs, o.immed, o.lastErr = 0, 0, 0, nil
	c.route(o, now)
}

// malformed handles a reply with neither a region error nor the result the
// op expects: a failed attempt for a read, an unknown outcome for a write.
func (c *Client) malformed(o *opState, from uint64, resp *pb.KvResponse, now time.Time) {
	c.stats.Malformed++
	err := fmt.Errorf("%w from store %d for %s: result %T", ErrMalformedReply, from, o.op.Kind, resp.GetResult())
	c.log.Warn("malformed reply", "op", o.id, "store", from, "request", resp.GetRequestId(), "err", err)
	o.lastErr = err // a write may have applied; a retry applies it at most once
	c.retryLater(o, now)
}

func describe(re *pb.RegionError) string {
	var kind string
	switch {
	case re.GetNotLeader() != nil:
		kind = fmt.Sprintf("not leader (hint store %d)", re.GetNotLeader().GetLeader().GetStoreId())
	case re.GetEpochNotMatch() != nil:
		kind = fmt.Sprintf("epoch not match (%d current regions)", len(re.GetEpochNotMatch().GetCurrentRegions()))
	case re.GetKeyNotInRegion() != nil:
		kind = "key not in region"
	case re.GetRegionNotFound() != nil:
		kind = "region not found"
	case re.GetStoreBusy() != nil:
		kind = "store busy"
	case re.GetStaleCommand() != nil:
		kind = "stale command"
	case re.GetInvalidRequest() != nil:
		kind = "invalid request: " + re.GetInvalidRequest().GetReason()
	case re.GetSessionExpired() != nil:
		kind = "session expired"
	default:
		kind = "region error"
	}
	if msg := re.GetMessage(); msg != "" {
		return kind + ": " + msg
	}
	return kind
}

// onRegionError reacts to a definite refusal: fix the cache, then retry.
func (c *Client) onRegionError(o *opState, re *pb.RegionError, now time.Time) {
	att := o.att
	o.lastErr = fmt.Errorf("store %d, region %d: %s", att.store, att.regionID, describe(re))
	e := c.cache.byID(att.regionID)
	if e != nil && !e.region.GetEpoch().Equal(att.epoch) {
		e = nil // refreshed meanwhile (by another op): leave it alone
	}
	switch {
	case re.GetNotLeader() != nil:
		c.stats.NotLeader++
		hint := re.GetNotLeader().GetLeader()
		if hint.GetStoreId() != 0 && hint.GetStoreId() != att.store {
			if e != nil {
				e.leader = hint.CloneVT()
			}
			c.retryNow(o, now)
			return
		}
		if e != nil {
			e.skip(att.store)
		}
		c.retryLater(o, now) // no leader known there: an election may be on
	case re.GetEpochNotMatch() != nil:
		c.stats.EpochNotMatch++
		for _, r := range re.GetEpochNotMatch().GetCurrentRegions() {
			// The store that answered likely leads these regions (a split
			// leaves the new region's leader on the same store).
			c.cache.insert(r, nil, r.PeerOnStore(att.store))
		}
		if ne := c.cache.find(o.routeKey()); ne != nil && ne.region.GetId() == att.regionID &&
			ne.region.GetEpoch().Equal(att.epoch) {
			// No news for this key: drop the entry and ask PD, after a pause.
			c.cache.remove(att.regionID)
			c.retryLater(o, now)
			return
		}
		c.retryNow(o, now)
	case re.GetKeyNotInRegion() != nil:
		c.stats.KeyNotInRegion++
		if e != nil {
			c.cache.remove(att.regionID)
		}
		c.retryNow(o, now)
	case re.GetRegionNotFound() != nil:
		c.stats.RegionNotFound++
		if e != nil {
			c.cache.remove(att.regionID)
		}
		c.retryLater(o, now)
	case re.GetStoreBusy() != nil:
		c.stats.StoreBusy++
		c.retryLater(o, now)
	case re.GetStaleCommand() != nil:
		c.stats.StaleCommand++
		c.retryLater(o, now)
	case re.GetInvalidRequest() != nil:
		if re.GetInvalidRequest().GetClockDependent() && o.timedOut {
			c.env.Buggify.Reach(buggify.ClockRefusalAfterTimeout)
		}
		// The store refuses the request itself: a retry cannot help.
		// Definite, unless the refusal depends on the region's clock (a
		// write started too far ahead of it): a copy may still be
		// accepted later, so the write's outcome is unknown. Nor is it
		// definite for a write an earlier attempt of which went to a
		// store: every store refuses the same content alike only while
		// they check it alike, and stores whose limits differ (a rolling
		// change of MaxValueBytes, say) may have accepted that attempt.
		c.stats.InvalidRequest++
		definite := !re.GetInvalidRequest().GetClockDependent() && (o.seq == 0 || o.attempts == 1)
		c.completeAs(o, Failed, fmt.Errorf("%w: %w", ErrInvalidOp, o.lastErr), definite)
	case re.GetSessionExpired() != nil:
		// The region forgot the session: no copy of the write will
		// apply there now (refusals are final), and the write cannot be
		// retried in that session. Later writes use a new one.
		c.stats.SessionExpired++
		if bytes.Equal(o.session, c.session) {
			c.newSession()
		}
		if se := re.GetSessionExpired(); se.GetNeverApplied() &&
			bytes.Equal(se.GetSessionId(), o.session) && se.GetSequence() == o.seq {
			// The region vouches that no copy of it applied before
			// either: send it again, fresh, in the new session.
			c.stats.SessionResends++
			c.assignSeq(o)
			c.retryNow(o, now)
			return
		}
		// A copy may have applied before the refusal (the network
		// duplicates requests; an evicted session's marker, or a
		// dropped one, does not say which writes it applied), even if
		// this was the write's only attempt: sending it again could
		// apply it twice. Ambiguous.
		c.completeAs(o, Ambiguous, fmt.Errorf("%w: %w (a copy of the write may have applied before: outcome unknown)",
			ErrSessionExpired, o.lastErr), false)
	default:
		c.stats.OtherRegionErrors++
		c.retryLater(o, now)
	}
}
