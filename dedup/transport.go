package dedup

import (
	"context"
	"fmt"
	"hash/maphash"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/getsentry/sentry-go"
	"go.opentelemetry.io/otel"

	"github.com/tracedup/tracedup/rootcause"
)

const (
	// TagSuppressed is set on an emitted root cause to how many events it
	// stands for.
	TagSuppressed = "dedup.suppressed"
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

// numShards splits the held traces so that SendEvent on many goroutines
// rarely contends for one lock.
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
	acks         *acks
	emit         *emitter

	traces atomic.Int64  // traces held, across shards
	spread atomic.Uint32 // spreads events without a trace over the shards
	closed atomic.Bool
	// timers counts window timers that were started and neither stopped nor
	// finished; Close waits for it, so no timer goroutine outlives Close.
	timers    sync.WaitGroup
	closeOnce sync.Once
	metrics   interface{ Unregister() error }
}

var _ sentry.Transport = (*Transport)(nil)

// NewTransport returns a Transport that hands what it sends to next, or to
// sentry.NewHTTPTransport() when next is nil. It starts one goroutine, which
// Close stops.
func NewTransport(next sentry.Transport, options ...Option) *Transport {
	if next == nil {
		next = sentry.NewHTTPTransport()
	}
	t := &Transport{next: next, cfg: newConfig(options), seed: maphash.MakeSeed()}
	t.strategyName = rootcause.Describe(t.cfg.strategy)
	burst := t.cfg.maxBurst
	if h, ok := next.(*sentry.HTTPTransport); ok && h.BufferSize > 1 {
		burst = min(burst, h.BufferSize/2)
	}
	perShard := max(1, t.cfg.maxRemembered/numShards)
	for i := range t.shards {
		t.shards[i].traces = make(map[string]*window)
		t.shards[i].decided = newMemory[string, decision](perShard, t.cfg.memory)
	}
	t.acks = newAcks(t.cfg.maxRemembered, t.cfg.memory)
	t.emit = newEmitter(next, burst)
	t.metrics = registerMetrics(t)
	return t
}

// shard holds the windows of the traces that hash to it, the decisions it
// remembers, and the counters of its events.
type shard struct {
	mu      sync.Mutex
	traces  map[string]*window
	decided *memory[string, decision]
	n       counts
	_       [64]byte // keep shards' locks on separate cache lines
}

// window is one trace's error events, held until its timer fires or a flush.
type window struct {
	traceID string
	errs    []rootcause.Error // each with its Event
	timer   *time.Timer
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

// SendEvent holds an error event of a trace for its window, or judges it
// against its trace's decision, or passes it through to the inner transport.
// It never calls the strategy while holding a lock.
func (t *Transport) SendEvent(event *sentry.Event) {
	if event == nil {
		return
	}
	if !isError(event) {
		t.passThrough(&t.shards[t.spread.Add(1)%numShards], event, &counts{passedThrough: 1})
		return
	}
	e := rootcause.FromEvent(event) // decoded once, here
	if e.TraceID == "" {
		t.passThrough(&t.shards[t.spread.Add(1)%numShards], event, &counts{passedThrough: 1})
		return
	}
	now := time.Now() // before any lock: it is a good part of SendEvent's cost
	downstream, isCascade := t.acks.explain(&e, now)
	// Tell the caller of the call this event was captured in that it is
	// reported: a cascade passes on the id of the event it stands behind.
	if isCascade {
		t.acks.acknowledge(&e, downstream)
	} else {
		t.acks.acknowledge(&e, e.EventID)
	}

	s := t.shardFor(e.TraceID)
	if isCascade {
		t.cascade(s, event, downstream)
		return
	}
	s.mu.Lock()
	s.n.received++
	s.n.pending++
	switch act, d := t.admit(s, e, now); act {
	case held:
		s.mu.Unlock()
	case late:
		s.mu.Unlock()
		t.judgeLate(s, d, e)
	case overflowed:
		s.n.overflow++
		s.mu.Unlock()
		t.hand(s, event)
	case afterClose:
		s.n.passedThrough++
		s.mu.Unlock()
		t.hand(s, event)
	}
}

// action is what SendEvent does with an error event once admitted.
type action int

const (
	held       action = iota // added to its trace's window
	late                     // its trace was decided: judge it against that
	overflowed               // a bound was reached: pass it through
	afterClose               // the Transport is closed: pass it through
)

// admit decides, under s.mu, what to do with e, and holds it when that is
// the answer. The event is counted as received and pending.
func (t *Transport) admit(s *shard, e rootcause.Error, now time.Time) (action, decision) {
	if t.closed.Load() {
		return afterClose, decision{}
	}
	if d, ok := s.decided.get(e.TraceID, now); ok {
		s.n.late++
		t.emit.reserve(1)
		return late, d
	}
	w := s.traces[e.TraceID]
	switch {
	case w == nil && t.traces.Load() >= int64(t.cfg.maxTraces),
		w != nil && len(w.errs) >= t.cfg.maxEventsPerTrace:
		return overflowed, decision{}
	case w == nil:
		w = &window{traceID: e.TraceID, errs: make([]rootcause.Error, 0, 4)}
		s.traces[e.TraceID] = w
		t.traces.Add(1)
		t.timers.Add(1)
		w.timer = time.AfterFunc(t.cfg.window, func() { t.expire(s, w) })
	}
	w.errs = append(w.errs, e)
	return held, decision{}
}
func (t *Transport) shardFor(traceID string) *shard {
	return &t.shards[maphash.String(t.seed, traceID)%numShards]
}

// passThrough hands event to the inner transport at once, counting it as
// received and, once handed, emitted. extra says why it passed.
func (t *Transport) passThrough(s *shard, event *sentry.Event, extra *counts) {
	s.mu.Lock()
	s.n.received++
	s.n.pending++
	s.n.add(extra)
	s.mu.Unlock()
	t.hand(s, event)
}

// hand gives a pending event of s to the inner transport.
func (t *Transport) hand(s *shard, event *sentry.Event) {
	t.next.SendEvent(event)
	s.handed(1)
}

// cascade suppresses, or with WithSendCascades sends tagged, an event that a
// downstream acknowledgement explains.
func (t *Transport) cascade(s *shard, event *sentry.Event, downstream string) {
	s.mu.Lock()
	s.n.received++
	s.n.cascades++
	if !t.cfg.sendCascades {
		s.n.suppressed++
		s.mu.Unlock()
		return
	}
	s.n.pending++
	s.mu.Unlock()
	if event.Tags == nil {
		event.Tags = make(map[string]string, 1)
	}
	event.Tags[TagCascadeOf] = downstream
	t.hand(s, event)
}

// expire ends a window when its timer fires, unless a flush took it first.
func (t *Transport) expire(s *shard, w *window) {
	defer t.timers.Done()
	s.mu.Lock()
	if s.traces[w.traceID] != w {
		s.mu.Unlock()
		return
	}
	t.take(s, w)
	s.mu.Unlock()
	t.decide(s, w)
}

// take removes w from s for a decision. s.mu is held. The reservation keeps
// flushes waiting until the decision's events are handed over.
func (t *Transport) take(s *shard, w *window) {
	delete(s.traces, w.traceID)
	t.traces.Add(-1)
	t.emit.reserve(1)
}

// decide splits w's errors into incidents and sends the root cause of each,
// annotated with what it stands for, suppressing the rest. If the strategy
// fails, it sends every event.
func (t *Transport) decide(s *shard, w *window) {
	incidents, err := rootcause.Incidents(t.cfg.strategy, w.errs)
	if err != nil {
		otel.Handle(err)
		events := make([]*sentry.Event, len(w.errs))
		for i := range w.errs {
			events[i] = w.errs[i].Event
		}
		s.mu.Lock()
		s.n.strategyFailures++
		s.decided.put(w.traceID, time.Now(), decision{failed: true})
		s.mu.Unlock()
		t.emit.push(s, events, 1)
		return
	}
	send := make([]*sentry.Event, 0, len(incidents))
	var d decision
	for _, inc := range incidents {
		root := w.errs[inc.Root]
		if len(inc.Members) > 1 {
			t.annotate(root.Event, w.errs, inc, len(incidents))
		}
		send = append(send, root.Event)
		d = d.remember(root, true)
	}
	for _, inc := range incidents {
		for _, i := range inc.Members {
			if i != inc.Root {
				d = d.remember(w.errs[i], false)
			}
		}
	}
	suppressed := uint64(len(w.errs) - len(incidents))
	s.mu.Lock()
	s.n.pending -= suppressed
	s.n.suppressed += suppressed
	s.decided.put(w.traceID, time.Now(), d)
	s.mu.Unlock()
	t.emit.push(s, send, 1)
}

// judgeLate suppresses a late event that joins the incident of an event its
// trace already sent, and sends it otherwise. Either way it is remembered
// with the trace's decision. One emission is already reserved.
func (t *Transport) judgeLate(s *shard, d decision, e rootcause.Error) {
	if !d.failed && t.explainedBySent(d, e) {
		s.mu.Lock()
		s.n.pending--
		s.n.suppressed++
		s.n.lateSuppressed++
		t.rememberLate(s, e, false)
		s.mu.Unlock()
		t.emit.push(s, nil, 1)
		return
	}
	s.mu.Lock()
	t.rememberLate(s, e, true)
	s.mu.Unlock()
	t.emit.push(s, []*sentry.Event{e.Event}, 1)
}

// explainedBySent reports whether the strategy puts e in an incident whose
// root cause is an event d sent.
func (t *Transport) explainedBySent(d decision, e rootcause.Error) bool {
	errs := append(slices.Clip(d.errs), e)
	last := len(errs) - 1
	incidents, err := rootcause.Incidents(t.cfg.strategy, errs)
	if err != nil {
		otel.Handle(err)
		return false
	}
	for _, inc := range incidents {
		if slices.Contains(inc.Members, last) {
			return inc.Root != last && d.sent[inc.Root]
		}
	}
	return false
}

// rememberLate adds a late event to its trace's decision. s.mu is held.
func (t *Transport) rememberLate(s *shard, e rootcause.Error, sent bool) {
	now := time.Now()
	if d, ok := s.decided.get(e.TraceID, now); ok && !d.failed {
		s.decided.put(e.TraceID, now, d.remember(e, sent))
	}
}

// annotate writes on an incident's root cause what it stands for.
func (t *Transport) annotate(root *sentry.Event, errs []rootcause.Error, inc rootcause.Incident, incidents int) {
	n := len(inc.Members) - 1
	listed := make([]map[string]string, 0, min(n, t.cfg.maxListed))
	for _, i := range inc.Members {
		if i == inc.Root {
			continue
		}
		if len(listed) == t.cfg.maxListed {
			break
		}
		e := &errs[i]
		listed = append(listed, map[string]string{
			"event_id":       e.EventID,
			"service":        e.Service,
			"exception_type": e.ExceptionType,
			"message":        e.Message,
			"span_id":        e.SpanID,
		})
	}
	if root.Tags == nil {
		root.Tags = make(map[string]string, 1)
	}
	root.Tags[TagSuppressed] = strconv.Itoa(n)
	if root.Contexts == nil {
		root.Contexts = make(map[string]sentry.Context, 1)
	}
	root.Contexts[ContextKey] = sentry.Context{
		"suppressed": n,
		"events":     listed,
		"trace_id":   errs[inc.Root].TraceID,
		"strategy":   t.strategyName,
		"incidents":  incidents,
	}
}

// drain takes every held window out of the shards and decides it now.
func (t *Transport) drain() {
	var taken []*window
	var from []*shard
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for _, w := range s.traces {
			if w.timer.Stop() {
				t.timers.Done()
			}
			t.take(s, w)
			taken = append(taken, w)
			from = append(from, s)
		}
		s.mu.Unlock()
	}
	for i, w := range taken {
		t.decide(from[i], w)
	}
}

// Flush sends every pending event to the inner transport, then flushes it,
// waiting at most timeout in all. It returns false if the time ran out.
func (t *Transport) Flush(timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return t.FlushWithContext(ctx)
}

// FlushWithContext sends every pending event to the inner transport, ending
// their windows early, then flushes the inner transport. It returns false if
// ctx ends first; events not yet handed over are then still on their way.
func (t *Transport) FlushWithContext(ctx context.Context) bool {
	t.drain()
	if !t.emit.waitIdle(ctx) {
		return false
	}
	return t.next.FlushWithContext(ctx)
}

// Configure passes the client's options to the inner transport.
func (t *Transport) Configure(options sentry.ClientOptions) {
	t.next.Configure(options)
}

// Close sends every pending event to the inner transport, stops the
// Transport's goroutines and closes the inner transport. Events sent after
// Close go straight to the inner transport. Close is safe to call more than
// once and from several goroutines; every call returns after the first has
// finished.
func (t *Transport) Close() {
	t.closeOnce.Do(func() {
		t.closed.Store(true)
		t.drain()
		t.emit.waitIdle(context.Background())
		t.emit.stop()
		t.timers.Wait()
		if t.metrics != nil {
			_ = t.metrics.Unregister()
		}
		t.next.Close()
	})
}

// String describes the Transport's configuration, for debugging.
func (t *Transport) String() string {
	return fmt.Sprintf("dedup.Transport{window: %s, strategy: %s}", t.cfg.window, t.strategyName)
}
