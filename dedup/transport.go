package dedup

import (
	"context"
	"fmt"
	"hash/maphash"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/getsentry/sentry-go"

	"github.com/tracedup/tracedup/internal/keys"
	"github.com/tracedup/tracedup/rootcause"
)

const (
	// TagSuppressed is set on an emitted root cause to how many events it
	// stands for.
	TagSuppressed = "dedup.suppressed"
	// ContextKey names the context on an emitted root cause that lists what
	// it stands for: {"suppressed": n, "events": [{"event_id", "service",
	// "exception_type", "message", "span_id"}...], "trace_id", "strategy"}.
	// The list holds at most WithMaxListed events; "suppressed" is exact.
	ContextKey = "dedup"
)

// numShards splits the held traces so that SendEvent on many goroutines
// rarely contends for one lock.
const numShards = 64

// Transport is a sentry.Transport that deduplicates error events per trace
// before handing them to another transport. It is safe for concurrent use.
type Transport struct {
	next sentry.Transport
	cfg  config
	// strategyName is the strategy's description, written on every report.
	strategyName string
	seed         maphash.Seed
	shards       [numShards]shard
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
		t.shards[i].decided = newMemory[decision](perShard, t.cfg.memory)
		t.shards[i].reported = newMemory[string](perShard, t.cfg.memory)
		t.shards[i].live = make(map[string][]*request)
	}
	t.emit = newEmitter(next, burst)
	t.metrics = registerMetrics(t)
	return t
}

// shard holds the windows of the traces that hash to it, the decisions it
// remembers, and the counters of its events.
type shard struct {
	mu      sync.Mutex
	traces  map[string]*window
	decided *memory[decision]
	n       counts

	// reported holds, per trace, the id of an event a downstream service
	// reported (see RoundTripper); live the requests being served (see
	// Handler).
	reported *memory[string]
	live     map[string][]*request
	_        [64]byte // keep shards' locks on separate cache lines
}

// window is one trace's events, held until its timer fires or a flush.
type window struct {
	traceID string
	events  []*sentry.Event
	timer   *time.Timer
}

// SendEvent holds an error event of a trace for its window, or judges it
// against its trace's decision, or passes it through to the inner transport.
// It never blocks on the inner transport and never calls the strategy while
// holding a lock.
func (t *Transport) SendEvent(event *sentry.Event) {
	if event == nil {
		return
	}
	traceID := traceOf(event)
	if event.Type != "" || traceID == "" {
		t.passThrough(&t.shards[t.spread.Add(1)%numShards], event, &counts{passedThrough: 1})
		return
	}
	s := t.shardFor(traceID)
	now := time.Now() // before the lock: it is a good part of SendEvent's cost
	s.mu.Lock()
	if t.closed.Load() {
		s.mu.Unlock()
		t.passThrough(s, event, &counts{passedThrough: 1})
		return
	}
	downstream, isCascade := s.reported.get(traceID, now)
	if reqs := s.live[traceID]; len(reqs) > 0 {
		// Tell this request's caller the event is reported: a cascade
		// passes on the id of the downstream event it stands behind.
		id := string(event.EventID)
		if isCascade {
			id = downstream
		}
		acknowledge(reqs, event, id)
	}
	if isCascade {
		t.cascade(s, event, downstream)
		return
	}
	if d, ok := s.decided.get(traceID, now); ok {
		s.n.received++
		s.n.pending++
		s.n.late++
		t.emit.reserve(1)
		s.mu.Unlock()
		t.judgeLate(s, d, event)
		return
	}
	w := s.traces[traceID]
	switch {
	case w == nil && t.traces.Load() >= int64(t.cfg.maxTraces),
		w != nil && len(w.events) >= t.cfg.maxEventsPerTrace:
		s.mu.Unlock()
		t.passThrough(s, event, &counts{overflow: 1})
		return
	case w == nil:
		w = &window{traceID: traceID, events: make([]*sentry.Event, 0, 4)}
		s.traces[traceID] = w
		t.traces.Add(1)
		t.timers.Add(1)
		w.timer = time.AfterFunc(t.cfg.window, func() { t.expire(s, w) })
	}
	w.events = append(w.events, event)
	s.n.received++
	s.n.pending++
	s.mu.Unlock()
}

// traceOf returns the event's trace id: the tag sentryotel stamps, else a
// string trace_id in the trace context (see rootcause.FromEvent).
func traceOf(event *sentry.Event) string {
	if id := event.Tags[keys.TagTraceID]; id != "" {
		return id
	}
	return rootcause.FromEvent(event).TraceID
}

func (t *Transport) shardFor(key string) *shard {
	return &t.shards[maphash.String(t.seed, key)%numShards]
}

// passThrough hands event to the inner transport at once, counting it as
// received and, once handed, emitted. extra says why it passed.
func (t *Transport) passThrough(s *shard, event *sentry.Event, extra *counts) {
	s.mu.Lock()
	s.n.received++
	s.n.pending++
	s.n.add(extra)
	s.mu.Unlock()
	t.next.SendEvent(event)
	s.handed(1)
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

// decide asks the strategy for w's root cause, sends it annotated, and
// suppresses the rest; if the strategy fails, sends every event.
func (t *Transport) decide(s *shard, w *window) {
	errs := make([]rootcause.Error, len(w.events))
	for i, ev := range w.events {
		errs[i] = rootcause.FromEvent(ev)
	}
	idx := 0
	if len(errs) > 1 {
		var ok bool
		if idx, ok = t.pick(errs); !ok {
			s.mu.Lock()
			s.n.strategyFailures++
			s.decided.put(w.traceID, time.Now(), decision{failed: true})
			s.mu.Unlock()
			t.emit.push(s, w.events, 1)
			return
		}
		t.annotate(w.events[idx], errs, idx)
	}
	root := errs[idx]
	root.Event = nil // the memory must not keep the event alive
	s.mu.Lock()
	s.n.pending -= uint64(len(errs) - 1)
	s.n.suppressed += uint64(len(errs) - 1)
	s.decided.put(w.traceID, time.Now(), decision{root: root})
	s.mu.Unlock()
	t.emit.push(s, w.events[idx:idx+1], 1)
}

// pick runs the strategy, turning a panic or an index out of range into a
// failure.
func (t *Transport) pick(errs []rootcause.Error) (idx int, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			idx, ok = 0, false
		}
	}()
	idx = t.cfg.strategy.RootCause(errs)
	return idx, idx >= 0 && idx < len(errs)
}

// judgeLate suppresses a late event that the strategy counts as a cascade of
// its trace's sent root cause, and sends it otherwise. One emission is
// already reserved.
func (t *Transport) judgeLate(s *shard, d decision, event *sentry.Event) {
	if !d.failed {
		errs := []rootcause.Error{d.root, rootcause.FromEvent(event)}
		if idx, ok := t.pick(errs); ok && idx == 0 {
			s.mu.Lock()
			s.n.pending--
			s.n.suppressed++
			s.n.lateSuppressed++
			s.mu.Unlock()
			t.emit.push(s, nil, 1)
			return
		}
	}
	t.emit.push(s, []*sentry.Event{event}, 1)
}

// annotate writes on the root cause what it stands for.
func (t *Transport) annotate(root *sentry.Event, errs []rootcause.Error, idx int) {
	n := len(errs) - 1
	listed := make([]map[string]string, 0, min(n, t.cfg.maxListed))
	for i, e := range errs {
		if i == idx {
			continue
		}
		if len(listed) == t.cfg.maxListed {
			break
		}
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
		"trace_id":   errs[idx].TraceID,
		"strategy":   t.strategyName,
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
