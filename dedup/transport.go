package dedup

import (
	"context"
	"fmt"
	"hash/maphash"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/getsentry/sentry-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracedup/tracedup/internal/keys"
	"github.com/tracedup/tracedup/rootcause"
)

const (
	// TagSuppressed is set on an emitted root cause to how many events it
	// stands for.
	TagSuppressed = keys.TagSuppressed
	// ContextKey names the context on an emitted root cause that lists what
	// it stands for: {"suppressed": n, "events": [{"event_id", "service",
	// "exception_type", "message", "span_id"}...], "trace_id", "strategy",
	// "incidents"}, "incidents" being how many incidents its trace had, and
	// so how many reports. The list holds at most WithMaxListed events;
	// "suppressed" is exact.
	ContextKey = "dedup"
	// TagCascadeOf is set, with WithSendCascades, on an event sent although
	// a downstream acknowledgement explains it: it holds the id of the
	// downstream event it stands behind. A Sentry alert rule can leave out
	// events that have it.
	TagCascadeOf = "dedup.cascade_of"
)

// numShards splits the state of the traces (windows, decisions, calls) so
// that SendEvent and the adapters on many goroutines rarely contend for one
// lock. A trace's state is all in one shard.
const numShards = 64

// Transport is a sentry.Transport that holds the error events of each trace
// for a short window and sends one event per incident before handing them to
// another transport. It is safe for concurrent use.
type Transport struct {
	next sentry.Transport
	cfg  config
	// strategyName is the strategy's description, written on every report.
	strategyName string
	seed         maphash.Seed
	shards       [numShards]shard
	work         *work
	decider      *decider
	emit         *emitter
	budget       budget

	// Per-shard shares of the count bounds.
	heldPerShard, tracesPerShard int

	spread atomic.Uint32 // spreads events without a trace over the shards
	// windows counts the open windows across shards, so that the end of a
	// request without errors, the common case, costs no clock read.
	windows atomic.Int64
	// openBytes and heldBytes are the estimated bytes of the events held in
	// open windows, and in all windows (open or due for a decision).
	openBytes, heldBytes atomic.Int64
	// liveCalls counts the Incoming calls being tracked (WithMaxCalls).
	liveCalls atomic.Int64
	// Counters of the acknowledgement, apart from the events' invariant.
	untracked, notAcknowledged atomic.Uint64
	// logs is what the cascade logs take from the client's options, nil
	// while the client sends no logs.
	logs atomic.Pointer[logSettings]

	closed atomic.Bool
	// timers counts window timers that were started and neither stopped nor
	// finished; Close waits for it, so no timer goroutine outlives Close.
	timers    sync.WaitGroup
	closeOnce sync.Once
	metrics   interface{ Unregister() error }
	trust     trust // the fleet key and the answers not honoured
}

var _ sentry.Transport = (*Transport)(nil)

// NewTransport returns a Transport that hands what it sends to next, or to
// sentry.NewHTTPTransport() when next is nil. It starts two goroutines, one
// that decides and one that hands events to next, which Close stops.
func NewTransport(next sentry.Transport, options ...Option) *Transport {
	if next == nil {
		next = sentry.NewHTTPTransport()
	}
	t := &Transport{next: next, cfg: newConfig(options), seed: maphash.MakeSeed()}
	t.strategyName = rootcause.Describe(t.cfg.strategy)
	t.budget = newBudget(t.cfg.maxBytes)
	burst := t.cfg.maxBurst
	if h, ok := next.(*sentry.HTTPTransport); ok && h.BufferSize > 1 {
		burst = min(burst, h.BufferSize/2)
	}
	t.heldPerShard = ceilDiv(t.cfg.maxHeld, numShards)
	t.tracesPerShard = ceilDiv(t.cfg.maxTraces, numShards)
	perShard := max(1, t.cfg.maxRemembered/numShards)
	for i := range t.shards {
		s := &t.shards[i]
		s.traces = make(map[trace.TraceID]*window)
		s.decided = newMemory[trace.TraceID](perShard, t.budget.decisions/numShards, t.cfg.memory, decision.bytes)
		s.live = make(map[trace.TraceID]*Incoming)
		s.calls = newMemory[trace.TraceID](perShard, t.budget.calls/numShards, t.cfg.memory, callsBytes)
	}
	t.work = newWork()
	t.emit = newEmitter(next, burst, t.cfg.maxQueue, t.budget.queue, t.work)
	t.decider = newDecider(t)
	t.metrics = registerMetrics(t)
	return t
}

// testHookBeforePush, when set by a test, runs between counting an event
// pending and queueing it for the emitter, where Close can come in between.
var testHookBeforePush func()

func ceilDiv(n, d int) int { return (n + d - 1) / d }

func (t *Transport) shardFor(id trace.TraceID) *shard {
	return &t.shards[maphash.Comparable(t.seed, id)%numShards]
}

// isError reports whether event takes part in deduplication: an event with
// an exception, or at level error or fatal. Messages at lower levels,
// transactions and other kinds of event pass through and acknowledge nothing.
func isError(event *sentry.Event) bool {
	if event.Type != "" {
		return false
	}
	return len(event.Exception) > 0 || event.Level == sentry.LevelError || event.Level == sentry.LevelFatal
}

// SendEvent holds an error event of a trace for its window, or queues it to
// be judged against its trace's decision, or queues it for the inner
// transport. It never blocks and never calls the strategy or the inner
// transport: those run on the Transport's own goroutines.
//
// An error event acknowledges the call it was captured in (see
// [Transport.Incoming]) only once it is admitted, and only while the
// Transport is sure that what it admits gets through (see [Stats]); an
// acknowledged event is then never dropped by a bound.
func (t *Transport) SendEvent(event *sentry.Event) {
	if event == nil {
		return
	}
	if !isError(event) {
		t.passThrough(&t.shards[t.spread.Add(1)%numShards], event, &counts{passedThrough: 1})
		return
	}
	e := rootcause.FromEvent(event) // decoded once, here
	id, err := trace.TraceIDFromHex(e.TraceID)
	if err != nil {
		t.passThrough(&t.shards[t.spread.Add(1)%numShards], event, &counts{passedThrough: 1, noTrace: 1})
		return
	}
	now := time.Now() // before any lock: it is a good part of SendEvent's cost
	size := eventBytes(event)
	s := t.shardFor(id)
	s.mu.Lock()
	s.n.received++
	if t.closed.Load() {
		s.n.afterClose++
		s.mu.Unlock()
		return
	}
	if downstream, ok := s.explain(id, &e, now, t.cfg.rule); ok {
		// A cascade passes on the id of the event it stands behind: the
		// downstream service acknowledged it only once sure of it.
		if in := s.callOf(id, &e); in != nil {
			in.acknowledge(downstream)
		}
		s.n.cascades++
		if !t.cfg.sendCascades {
			s.n.suppressed++
			s.mu.Unlock()
			t.cascadeLog(id, &e, downstream)
			return
		}
		s.n.pending++
		s.mu.Unlock()
		if event.Tags == nil {
			event.Tags = make(map[string]string, 1)
		}
		event.Tags[TagCascadeOf] = downstream
		t.emit.push(s, event, size, false)
		t.yieldIfBehind()
		return
	}
	s.n.pending++
	// Admit first, then acknowledge: a caller suppresses its cascade on the
	// strength of it, so only an event that is admitted, while the
	// Transport is sure of what it admits, acknowledges its call.
	in := s.callOf(id, &e)
	sure := in != nil && t.sure(now)
	ack, admitted := t.admit(s, id, &e, size, now, sure)
	if in != nil {
		if sure && admitted != passed {
			in.acknowledge(ack)
		} else {
			t.notAcknowledged.Add(1)
		}
	}
	s.mu.Unlock()
	if admitted == passed {
		if testHookBeforePush != nil {
			testHookBeforePush()
		}
		t.emit.push(s, event, size, false)
	}
	t.yieldIfBehind()
}

// sure reports whether the Transport can be sure that an event it admits
// now reaches the inner transport: it is not closing, the queue to the inner
// transport and the queue of late events are under a quarter full, no flush
// of the inner transport is slow, and nothing was dropped, sent undecided or failed to flush for a
// while (see [Stats.NotAcknowledged]). When in doubt, it does not
// acknowledge, and callers report their own errors.
func (t *Transport) sure(now time.Time) bool {
	return !t.closed.Load() && !t.decider.crowded.Load() && t.emit.sure(now)
}

// yieldIfBehind lets the Transport's goroutines run when their queues are
// half full, or the decider has a chunk of late events to judge: in a storm
// that keeps every processor busy, the scheduler would otherwise leave them
// waiting for a time slice while the queues overflow. Past half the late
// queue it yields a few times. It never blocks: runtime.Gosched only yields
// the processor.
func (t *Transport) yieldIfBehind() {
	half := int64(t.cfg.maxQueue / 2)
	if t.emit.backlog.Load() > half || t.decider.backlog.Load() >= lateChunk {
		runtime.Gosched()
	}
	for i := 0; i < 8 && t.decider.backlog.Load() > half/2; i++ {
		runtime.Gosched()
	}
}

// passThrough queues event for the inner transport, counting it as
// received and pending until it is handed over. extra says why it passed.
func (t *Transport) passThrough(s *shard, event *sentry.Event, extra *counts) {
	s.mu.Lock()
	s.n.received++
	if t.closed.Load() {
		s.n.afterClose++
		s.mu.Unlock()
		return
	}
	s.n.pending++
	s.n.add(extra)
	s.mu.Unlock()
	if testHookBeforePush != nil {
		testHookBeforePush()
	}
	t.emit.push(s, event, eventBytes(event), false)
	t.yieldIfBehind()
}

// Flush sends every pending event to the inner transport, then flushes it,
// waiting at most timeout in all. It returns false if the time ran out.
func (t *Transport) Flush(timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return t.FlushWithContext(ctx)
}

// FlushWithContext decides every held trace at once, waits until every
// pending event was handed to the inner transport, then flushes the inner
// transport. It returns false if ctx ends first, even while a strategy or
// the inner transport is still busy: events not yet handed over are then
// still on their way, and are counted in Pending. After Close it does not
// flush the closed inner transport.
func (t *Transport) FlushWithContext(ctx context.Context) bool {
	t.drain()
	if !t.work.wait(ctx) {
		return false
	}
	if t.closed.Load() {
		return true
	}
	var ok bool
	if err := safely("FlushWithContext", func() { ok = t.next.FlushWithContext(ctx) }); err != nil {
		otel.Handle(err)
		return false
	}
	return ok
}

// Configure passes the client's options to the inner transport. The
// client's DSN names the Transport's fleet, unless WithFleetKey did: see
// "Across services" in the package documentation. With EnableLogs, each
// error suppressed as a cascade of another service's report is logged on
// its trace (see LogAttrCascadeOf).
func (t *Transport) Configure(options sentry.ClientOptions) {
	t.configureTrust(options)
	t.configureLogs(options)
	t.next.Configure(options)
}

// Close decides every held trace, waits until every pending event was handed
// to the inner transport, stops the Transport's goroutines and closes the
// inner transport. It waits at most WithCloseTimeout (DefaultCloseTimeout):
// what was not handed over by then is counted in Stats.Abandoned, except an
// event that the inner transport is still being handed, which counts as
// what it becomes. Events sent after Close are not handed to the closed
// inner transport; they are counted in Stats.AfterClose. Close is safe to
// call more than once and from several goroutines; every call returns after
// the first has finished.
//
// From the moment Close begins nothing more is acknowledged; events that
// were are handed over first, and a flush of the inner transport in
// progress is cut short so that they are not held behind it.
//
// The inner transport's own Close is called last, on the caller's
// goroutine, and is not bounded: sentry-go's transports return from it at
// once, and abandoning a goroutine still inside a user's transport would
// only hide the hang. A panic in it is recovered.
func (t *Transport) Close() {
	t.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), t.cfg.closeTimeout)
		defer cancel()
		t.closed.Store(true)
		t.emit.beginClose()
		t.drain()
		if !t.work.wait(ctx) {
			t.decider.abandon()
			t.emit.abandon()
		}
		t.decider.loop.stop(ctx)
		t.emit.loop.stop(ctx)
		// A SendEvent that counted its event before Close began may queue
		// it only now, after the goroutines stopped: count it, and
		// anything after it, as abandoned rather than leave it pending.
		t.decider.abandon()
		t.emit.abandon()
		t.timers.Wait() // every timer was stopped or finds its window gone
		if t.metrics != nil {
			_ = t.metrics.Unregister()
		}
		if err := safely("Close", t.next.Close); err != nil {
			otel.Handle(err)
		}
	})
}

// String describes the Transport's configuration, for debugging.
func (t *Transport) String() string {
	return fmt.Sprintf("dedup.Transport{window: %s, strategy: %s}", t.cfg.window, t.strategyName)
}
