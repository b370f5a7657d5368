package dedup

import (
	"context"
	"fmt"
	"hash/maphash"
	"runtime"
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
// rarely contends for one lock. Bounds are shared evenly by the shards.
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
	work         *work
	decider      *decider
	emit         *emitter

	// Per-shard shares of the bounds.
	heldPerShard, tracesPerShard int

	spread atomic.Uint32 // spreads events without a trace over the shards
	// windows counts the open windows across shards, so that the end of a
	// request without errors, the common case, costs no shard lock.
	windows atomic.Int64
	closed  atomic.Bool
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
	burst := t.cfg.maxBurst
	if h, ok := next.(*sentry.HTTPTransport); ok && h.BufferSize > 1 {
		burst = min(burst, h.BufferSize/2)
	}
	t.heldPerShard = ceilDiv(t.cfg.maxHeld, numShards)
	t.tracesPerShard = ceilDiv(t.cfg.maxTraces, numShards)
	perShard := max(1, t.cfg.maxRemembered/numShards)
	for i := range t.shards {
		t.shards[i].traces = make(map[string]*window)
		t.shards[i].decided = newMemory[string, decision](perShard, t.cfg.memory)
	}
	t.acks = newAcks(t.cfg.maxRemembered, t.cfg.memory)
	t.work = newWork()
	t.emit = newEmitter(next, burst, t.cfg.maxQueue, t.work)
	t.decider = newDecider(t)
	t.metrics = registerMetrics(t)
	return t
}

// testHookBeforePush, when set by a test, runs between counting an event
// pending and queueing it for the emitter, where Close can come in between.
var testHookBeforePush func()

func ceilDiv(n, d int) int { return (n + d - 1) / d }

// shard holds the windows of the traces that hash to it, the decisions it
// remembers, and the counters of its events.
type shard struct {
	mu     sync.Mutex
	traces map[string]*window
	// open lists the windows not yet due for a decision, oldest first.
	open windowList
	// held counts the events in the shard's windows; heldDue those of them
	// in windows due for a decision.
	held, heldDue int
	decided       *memory[string, decision]
	n             counts
	_             [64]byte // keep shards' locks on separate cache lines
}

// window is one trace's error events, held until it is decided.
type window struct {
	traceID string
	// errs are the trace's errors; an error known to follow from an
	// earlier one of them (rootcause.Follows) keeps no Event: it is never
	// sent, so its body is let go at once, and followed names the error it
	// follows from, at the same index.
	errs     []rootcause.Error
	followed []int32
	// chained has a bit set for every span id on the chain of an error of
	// errs (a hash of it): an error whose span's bit is clear follows from
	// none of them, and needs no scan.
	chained    [4]uint64
	timer      *time.Timer
	deadline   time.Time
	due        bool // handed to the decider
	prev, next *window
}

// windowList is a doubly linked list of windows, oldest first.
type windowList struct {
	head, tail *window
	n          int
}

func (l *windowList) pushBack(w *window) {
	w.prev, w.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = w
	} else {
		l.head = w
	}
	l.tail = w
	l.n++
}

func (l *windowList) remove(w *window) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		l.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		l.tail = w.prev
	}
	w.prev, w.next = nil, nil
	l.n--
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
	// Tell the caller of the call this event was captured in that it is
	// reported: a cascade passes on the id of the event it stands behind.
	// After Close the event itself reaches nobody: it acknowledges nothing.
	downstream, isCascade := t.acks.settle(&e, now, t.cfg.cascadeTypes, !t.closed.Load())

	s := t.shardFor(e.TraceID)
	if isCascade {
		t.cascade(s, event, downstream)
		return
	}
	s.mu.Lock()
	s.n.received++
	if t.closed.Load() {
		s.n.afterClose++
		s.mu.Unlock()
		return
	}
	s.n.pending++
	pass := t.admit(s, &e, now)
	s.mu.Unlock()
	if pass {
		if testHookBeforePush != nil {
			testHookBeforePush()
		}
		t.emit.push(s, event)
	}
	t.yieldIfBehind()
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

// admit holds e in its trace's window, or queues it to be judged as late,
// under s.mu. It reports whether there was no room for either, and e must
// pass through. The event is counted as received and pending.
func (t *Transport) admit(s *shard, e *rootcause.Error, now time.Time) (pass bool) {
	if _, ok := s.decided.get(e.TraceID, now); ok {
		s.n.late++
		if t.decider.late(s, *e) {
			return false
		}
		s.n.overflow++
		return true
	}
	w := s.traces[e.TraceID]
	by := -1
	if w != nil {
		by = t.follows(w, e)
	}
	if w == nil && len(s.traces)-s.dueTraces() >= t.tracesPerShard {
		t.decideEarly(s, s.open.head)
	}
	// Room in the shard's share of open windows, deciding the oldest early
	// as needed; due windows have as much again.
	for s.held-s.heldDue >= t.heldPerShard && s.open.head != nil {
		t.decideEarly(s, s.open.head)
	}
	if s.held >= 2*t.heldPerShard || (w == nil && len(s.traces) >= 2*t.tracesPerShard) {
		if w != nil {
			// No room in the window: decide it, and judge e against the
			// decision as a late event, before passing anything through.
			t.decideEarly(s, w)
			s.n.late++
			if t.decider.late(s, *e) {
				return false
			}
		}
		s.n.overflow++
		return true
	}
	if w == nil {
		w = &window{traceID: e.TraceID, errs: make([]rootcause.Error, 0, 4), deadline: now.Add(t.cfg.window)}
		s.traces[e.TraceID] = w
		t.windows.Add(1)
		s.open.pushBack(w)
		t.timers.Add(1)
		w.timer = time.AfterFunc(t.cfg.window, func() { t.expire(s, w) })
	}
	if by >= 0 {
		e.Event = nil // a symptom: its summary is all that is needed
	}
	s.held++
	if w.due {
		s.heldDue++
	}
	w.errs = append(w.errs, *e)
	w.followed = append(w.followed, int32(by))
	w.chain(e)
	if !w.due && len(w.errs) >= t.cfg.maxEventsPerTrace {
		t.decideEarly(s, w)
	}
	return false
}

// follows returns the index of an error of w that e is known to follow
// from (rootcause.Follows, and WithCascadeTypes across services), or -1.
// That error may itself follow from another: followed leads to one with its
// body. s.mu is held.
func (t *Transport) follows(w *window, e *rootcause.Error) int {
	if e.SpanID == "" {
		return -1
	}
	if k := spanBit(e.SpanID); w.chained[k/64]&(1<<(k%64)) == 0 {
		return -1
	}
	for i := range w.errs {
		a := &w.errs[i]
		// Most errors of a window are not on each other's chains (a storm
		// on one span, siblings): rule those out before copying them into
		// Follows.
		if e.SpanID == "" || e.SpanID == a.SpanID ||
			a.ParentSpanID != e.SpanID && !slices.Contains(a.Ancestors, e.SpanID) {
			continue
		}
		if !rootcause.Follows(*e, *a) {
			continue
		}
		if len(t.cfg.cascadeTypes) > 0 && a.Service != e.Service && !e.IsType(t.cfg.cascadeTypes...) {
			continue
		}
		return i
	}
	return -1
}

// chain sets the bits of the span ids on e's chain. s.mu is held.
func (w *window) chain(e *rootcause.Error) {
	if e.ParentSpanID != "" {
		k := spanBit(e.ParentSpanID)
		w.chained[k/64] |= 1 << (k % 64)
	}
	for _, id := range e.Ancestors {
		k := spanBit(id)
		w.chained[k/64] |= 1 << (k % 64)
	}
}

// spanBit hashes a span id into 0..255 from its last two characters, which
// for random hex ids are as good as any.
func spanBit(id string) uint {
	n := len(id)
	if n < 2 {
		return 0
	}
	return (uint(id[n-1]) ^ uint(id[n-2])<<3) & 255
}

// dueTraces counts s's windows due for a decision. s.mu is held.
func (s *shard) dueTraces() int { return len(s.traces) - s.open.n }

// decideEarly hands w to the decider before its window ends because a bound
// was reached. s.mu is held.
func (t *Transport) decideEarly(s *shard, w *window) {
	if w == nil || w.due {
		return
	}
	if w.timer.Stop() {
		t.timers.Done()
	}
	s.n.decidedEarly++
	t.makeDue(s, w)
}

// makeDue hands w to the decider; its events stay in s, counted as held,
// until the decider takes them. s.mu is held.
func (t *Transport) makeDue(s *shard, w *window) {
	if w.due {
		return
	}
	w.due = true
	s.open.remove(w)
	s.heldDue += len(w.errs)
	if !t.decider.window(s, w) {
		// Close gave up on the decisions: count the events for it.
		delete(s.traces, w.traceID)
		t.windows.Add(-1)
		n := uint64(len(w.errs))
		s.held -= len(w.errs)
		s.heldDue -= len(w.errs)
		s.n.pending -= n
		s.n.abandoned += n
	}
}

func (t *Transport) shardFor(traceID string) *shard {
	return &t.shards[maphash.String(t.seed, traceID)%numShards]
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
	t.emit.push(s, event)
	t.yieldIfBehind()
}

// cascade suppresses, or with WithSendCascades sends tagged, an event that a
// downstream acknowledgement explains.
func (t *Transport) cascade(s *shard, event *sentry.Event, downstream string) {
	if !t.cfg.sendCascades {
		s.mu.Lock()
		s.n.received++
		s.n.cascades++
		s.n.suppressed++
		s.mu.Unlock()
		return
	}
	if event.Tags == nil {
		event.Tags = make(map[string]string, 1)
	}
	event.Tags[TagCascadeOf] = downstream
	t.passThrough(s, event, &counts{cascades: 1})
}

// expire hands a window to the decider when its timer fires.
func (t *Transport) expire(s *shard, w *window) {
	defer t.timers.Done()
	s.mu.Lock()
	if s.traces[w.traceID] == w {
		t.makeDue(s, w)
	}
	s.mu.Unlock()
}

// requestEnded shortens the window of a trace whose last call served in
// this process ended to the grace of WithRequestGrace.
// The id is hex, as the events carry it; it is not kept.
func (t *Transport) requestEnded(traceID []byte) {
	s := &t.shards[maphash.Bytes(t.seed, traceID)%numShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.traces[string(traceID)]
	if w == nil || w.due {
		return // the common case, a request without errors: no clock read
	}
	now := time.Now()
	if w.deadline.Sub(now) <= t.cfg.grace {
		return
	}
	// A timer that cannot be stopped is firing: the window ends anyway.
	if w.timer.Stop() {
		w.timer.Reset(t.cfg.grace)
		w.deadline = now.Add(t.cfg.grace)
		s.n.requestEnded++
	}
}

// take removes a due window from s for the decider, or returns false when
// Close took it first.
func (t *Transport) take(s *shard, w *window) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.traces[w.traceID] != w {
		return false
	}
	delete(s.traces, w.traceID)
	t.windows.Add(-1)
	s.held -= len(w.errs)
	s.heldDue -= len(w.errs)
	// Until decide remembers the decision, the trace's later events are
	// queued as late ones behind it, rather than open a second window.
	s.decided.put(w.traceID, time.Now(), decision{})
	return true
}

// decide splits w's errors into incidents and sends the root cause of each,
// annotated with what it stands for, suppressing the rest. If the strategy
// fails, it sends every event. It runs on the decider's goroutine.
func (t *Transport) decide(s *shard, w *window) {
	incidents, err := rootcause.Incidents(t.cfg.strategy, w.errs)
	if err != nil {
		otel.Handle(err)
		// Every error with its body is sent; those without follow from one
		// of them, and are suppressed.
		events := make([]*sentry.Event, 0, len(w.errs))
		for i := range w.errs {
			if w.errs[i].Event != nil {
				events = append(events, w.errs[i].Event)
			}
		}
		suppressed := uint64(len(w.errs) - len(events))
		s.mu.Lock()
		s.n.strategyFailures++
		s.n.pending -= suppressed
		s.n.suppressed += suppressed
		s.decided.put(w.traceID, time.Now(), decision{failed: true})
		s.mu.Unlock()
		t.emit.pushWait(s, events...)
		return
	}
	send := make([]*sentry.Event, 0, len(incidents))
	sent := make(map[int]bool, len(incidents))
	var d decision
	for _, inc := range incidents {
		// A root the strategy named without its body (it follows from
		// another error) is reported by the error it follows from.
		root := inc.Root
		for w.errs[root].Event == nil {
			root = int(w.followed[root])
		}
		if sent[root] {
			continue // that error's report stands for this incident too
		}
		sent[root] = true
		if len(inc.Members) > 1 {
			t.annotate(w.errs[root].Event, w.errs, rootcause.Incident{Root: root, Members: inc.Members}, len(incidents))
		}
		send = append(send, w.errs[root].Event)
		d = d.remember(w.errs[root], true)
	}
	for i := range w.errs {
		if !sent[i] {
			d = d.remember(w.errs[i], false)
		}
	}
	suppressed := uint64(len(w.errs) - len(send))
	s.mu.Lock()
	s.n.pending -= suppressed
	s.n.suppressed += suppressed
	s.decided.put(w.traceID, time.Now(), d)
	s.mu.Unlock()
	t.emit.pushWait(s, send...)
}

// judgeLate judges late events of one trace, at most lateChunk of them, in
// one strategy call with what its decision remembers: a late event that
// joins the incident of an event the trace already sent is suppressed; of an
// incident rooted among the late events, the root is sent, standing for the
// rest; every other late event is sent. Each is then remembered with the
// trace's decision. It runs on the decider's goroutine.
func (t *Transport) judgeLate(s *shard, traceID string, late []rootcause.Error) {
	s.mu.Lock()
	d, ok := s.decided.get(traceID, time.Now())
	s.mu.Unlock()
	sent := make([]bool, len(late))
	for i := range sent {
		sent[i] = true // when in doubt, send
	}
	if ok && !d.failed {
		t.explainLate(s, d, late, sent)
	}
	events := make([]*sentry.Event, 0, len(late))
	for i := range late {
		if sent[i] {
			events = append(events, late[i].Event)
		}
	}
	suppressed := uint64(len(late) - len(events))
	now := time.Now()
	s.mu.Lock()
	s.n.pending -= suppressed
	s.n.suppressed += suppressed
	s.n.lateSuppressed += suppressed
	if d, ok := s.decided.get(traceID, now); ok && !d.failed {
		// The sent ones first: they are what suppresses later events.
		for _, want := range []bool{true, false} {
			for i := range late {
				if sent[i] == want {
					d = d.remember(late[i], want)
				}
			}
		}
		s.decided.put(traceID, now, d)
	}
	s.mu.Unlock()
	t.emit.pushWait(s, events...)
}

// explainLate splits d's remembered errors and late into incidents and
// clears sent[i] for each late error that is suppressed: a member, not the
// root, of an incident whose root d sent or that is itself late (that root
// is sent, annotated with its late members). A late member of an incident
// rooted in an error d remembers but did not send stays sent, as does every
// late error when the strategy fails, which is counted.
func (t *Transport) explainLate(s *shard, d decision, late []rootcause.Error, sent []bool) {
	known := len(d.errs)
	errs := append(slices.Clip(d.errs), late...)
	incidents, err := rootcause.Incidents(t.cfg.strategy, errs)
	if err != nil {
		otel.Handle(err)
		s.mu.Lock()
		s.n.strategyFailures++
		s.mu.Unlock()
		return
	}
	for _, inc := range incidents {
		if inc.Root < known && !d.sent[inc.Root] {
			continue
		}
		// Members are ascending: the late ones come after the remembered.
		first, _ := slices.BinarySearch(inc.Members, known)
		lateMembers := inc.Members[first:]
		for _, i := range lateMembers {
			if i != inc.Root {
				sent[i-known] = false
			}
		}
		if inc.Root >= known && len(lateMembers) > 1 {
			t.annotate(errs[inc.Root].Event, errs, rootcause.Incident{Root: inc.Root, Members: lateMembers}, len(incidents))
		}
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

// drain hands every held window to the decider now.
func (t *Transport) drain() {
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for w := s.open.head; w != nil; w = s.open.head {
			if w.timer.Stop() {
				t.timers.Done()
			}
			t.makeDue(s, w)
		}
		s.mu.Unlock()
	}
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
// "Across services" in the package documentation.
func (t *Transport) Configure(options sentry.ClientOptions) {
	t.configureTrust(options)
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
// The inner transport's own Close is called last, on the caller's
// goroutine, and is not bounded: sentry-go's transports return from it at
// once, and abandoning a goroutine still inside a user's transport would
// only hide the hang. A panic in it is recovered.
func (t *Transport) Close() {
	t.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), t.cfg.closeTimeout)
		defer cancel()
		t.closed.Store(true)
		t.drain()
		if !t.work.wait(ctx) {
			t.decider.abandon()
			t.emit.abandon()
		}
		t.decider.stop(ctx)
		t.emit.stop(ctx)
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
