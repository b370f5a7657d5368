package dedup

import (
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/tracedup/tracedup/rootcause"
)

// shard holds, for the traces that hash to it, everything the Transport
// knows of them: the windows of their error events, the decisions it
// remembers, the calls being served and the calls made. One lock, one
// lookup by trace.TraceID, for an error event and for a request's end.
type shard struct {
	mu     sync.Mutex
	traces map[trace.TraceID]*window
	// open lists the windows not yet due for a decision, oldest first.
	open windowList
	// held counts the events in the shard's windows; heldDue those of them
	// in windows due for a decision.
	held, heldDue int
	decided       *memory[trace.TraceID, decision]
	// live holds, per trace, its calls being served, newest first, linked
	// through Incoming.older.
	live map[trace.TraceID]*Incoming
	// calls are the last calls made, per trace and operation.
	calls *memory[trace.TraceID, []call]
	n     counts
	_     [64]byte // keep shards' locks on separate cache lines
}

// window is one trace's error events, held until it is decided.
type window struct {
	id trace.TraceID
	// errs are the trace's errors; an error known to follow from, or to
	// repeat, an earlier one of them keeps no Event: it is never sent, so
	// its body is let go at once, and followed names the error it follows
	// from, at the same index (-1 for none).
	errs     []rootcause.Error
	followed []int32
	sizes    []int64 // the estimated bytes each error holds
	bytes    int64   // their sum
	// acked says that an error of the window acknowledged a call: its
	// reports are never dropped by a bound.
	acked bool
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

// budget splits WithMaxBytes among what the Transport holds. Each part
// degrades on its own when full, in this order of likelihood: open windows
// are decided early; windows due for a decision leave new errors to pass
// through undecided (Stats.Overflow); the late queue passes its overflow
// through too; the queue to the inner transport drops what is not
// acknowledged (Stats.QueueFull); the memories forget their oldest.
type budget struct {
	open, held, queue, late, decisions, calls int64
}

func newBudget(total int64) budget {
	return budget{
		open:      total * 5 / 16, // of held: open windows
		held:      total * 5 / 8,  // every window, open or due
		queue:     total / 8,
		late:      total / 16,
		decisions: total / 16,
		calls:     total / 16,
	}
}

// reserve adds n to v if the result stays within limit, or if v is zero
// (one event always fits, whatever its size), and reports whether it did.
func reserve(v *atomic.Int64, n, limit int64) bool {
	for {
		cur := v.Load()
		if cur != 0 && cur+n > limit {
			return false
		}
		if v.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

// admission is what became of an error event that SendEvent admitted.
type admission int

const (
	held       admission = iota // in its trace's window
	queuedLate                  // queued to be judged against its trace's decision
	suppressed                  // suppressed at once, a repeat of a report sent
	passed                      // no room: it must pass through undecided
)

// admit holds e (of trace id, estimated at size bytes) in its trace's
// window, or queues it to be judged as late, or suppresses it as a repeat of
// a report its trace sent, under s.mu. It returns what it did and the event
// id that acknowledges e's call: e's own, or the report's that it repeats.
// The event is counted as received and pending. protect says that e will
// acknowledge a call if admitted: what it becomes is then never dropped by
// a bound.
func (t *Transport) admit(s *shard, id trace.TraceID, e *rootcause.Error, size int64, now time.Time, protect bool) (string, admission) {
	if d, ok := s.decided.get(id, now); ok {
		return t.admitLate(s, id, d, e, size, protect)
	}
	w := s.traces[id]
	by := int32(-1)
	if w != nil {
		by = t.follows(w, e)
	}
	cost := size
	if by >= 0 {
		cost = summaryBytes(e) // a symptom or repeat: its summary is all that is kept
	}
	if w == nil && s.open.n >= t.tracesPerShard {
		t.decideEarly(s, s.open.head)
	}
	// Room in the shard's share of open windows and in the budget of open
	// windows, deciding the oldest early as needed; due windows have as
	// much again.
	for s.open.head != nil && (s.held-s.heldDue >= t.heldPerShard || t.openBytes.Load()+cost > t.budget.open) {
		t.decideEarly(s, s.open.head)
	}
	if w != nil && w.due {
		// Its window waits for the decider: e is judged against the
		// decision, as a late event.
		return t.queueLate(s, id, e, size, protect)
	}
	if s.held >= 2*t.heldPerShard || (w == nil && len(s.traces) >= 2*t.tracesPerShard) || !reserve(&t.heldBytes, cost, t.budget.held) {
		if w != nil {
			// No room in the window: decide it, and judge e against the
			// decision as a late event, before passing anything through.
			t.decideEarly(s, w)
			return t.queueLate(s, id, e, size, protect)
		}
		s.n.overflow++
		t.emit.trouble(now)
		return string(e.EventID), passed
	}
	if w == nil {
		w = &window{id: id, errs: make([]rootcause.Error, 0, 4), deadline: now.Add(t.cfg.window)}
		s.traces[id] = w
		t.windows.Add(1)
		s.open.pushBack(w)
		t.timers.Add(1)
		w.timer = time.AfterFunc(t.cfg.window, func() { t.expire(s, w) })
	}
	if by >= 0 {
		e.Event = nil
	}
	t.openBytes.Add(cost)
	s.held++
	w.errs = append(w.errs, *e)
	w.followed = append(w.followed, by)
	w.sizes = append(w.sizes, cost)
	w.bytes += cost
	w.acked = w.acked || protect
	w.chain(e)
	if len(w.errs) >= t.cfg.maxEventsPerTrace {
		t.decideEarly(s, w)
	}
	if by >= 0 {
		// A symptom or repeat is suppressed in its window: its call stands
		// behind the error it follows, or the one that error follows.
		i := by
		for w.errs[i].Event == nil && w.followed[i] >= 0 {
			i = w.followed[i]
		}
		return w.errs[i].EventID, held
	}
	return e.EventID, held
}

// admitLate judges e, an error of a decided trace: a repeat of an error the
// decision sent (the same service and type, on a span no remembered error is
// known to be inside of) is suppressed at once, as rootcause.Split would
// make it one incident with it; anything else is queued for the decider.
// This keeps a storm in one trace (a retry loop failing thousands of times)
// off the decider. s.mu is held.
func (t *Transport) admitLate(s *shard, id trace.TraceID, d decision, e *rootcause.Error, size int64, protect bool) (string, admission) {
	if t.cfg.splitsByLinks && !d.failed && !d.placeholder {
		if i := d.repeats(e); i >= 0 {
			s.n.late++
			s.n.lateSuppressed++
			s.n.suppressed++
			s.n.pending--
			return d.errs[i].EventID, suppressed
		}
	}
	return t.queueLate(s, id, e, size, protect)
}

// repeats returns the index of a sent error of d that e repeats, or -1.
// e must not be on the chain of any error d remembers: it would then be a
// symptom of that error's incident, which may not have been sent.
func (d decision) repeats(e *rootcause.Error) int {
	k := -1
	for i := range d.errs {
		a := &d.errs[i]
		if rootcause.Encloses(e, a) {
			return -1
		}
		if k < 0 && d.sent[i] && rootcause.Repeats(e, a) {
			k = i
		}
	}
	return k
}

// queueLate queues e to be judged against its trace's decision, or reports
// that it must pass through when the late queue is full. s.mu is held.
func (t *Transport) queueLate(s *shard, id trace.TraceID, e *rootcause.Error, size int64, protect bool) (string, admission) {
	s.n.late++
	if t.decider.late(s, id, *e, size, protect) {
		return e.EventID, queuedLate
	}
	s.n.overflow++
	t.emit.trouble(time.Now())
	return e.EventID, passed
}

// follows returns the index of an error of w that e is known to follow
// from (rootcause.Follows, and WithCascadeTypes across services) or, with
// the built-in split, to repeat, or -1. That error may itself follow from
// another: followed leads to one with its body. With a SpanSource, an error
// that does not carry its span's last child is not known to follow yet: the
// source may know, when the trace is decided, that its span carried on past
// the failure or had ended, and the error is then its own root, which needs
// its body. s.mu is held.
func (t *Transport) follows(w *window, e *rootcause.Error) int32 {
	onChain := w.onChain(e.SpanID)
	if onChain && (e.LastChild != "" || t.cfg.spans == nil) {
		for i := range w.errs {
			if t.cfg.rule.Follows(e, &w.errs[i]) {
				return int32(i)
			}
		}
	}
	if !t.cfg.splitsByLinks || onChain {
		return -1 // a repeat on a span some error is inside of may be a symptom
	}
	for i := range w.errs {
		if w.errs[i].Event != nil && rootcause.Repeats(e, &w.errs[i]) {
			return int32(i)
		}
	}
	return -1
}

// onChain reports whether span may be on the chain of an error of w (its
// bit is set); false for no span. s.mu is held.
func (w *window) onChain(span string) bool {
	if span == "" {
		return false
	}
	k := spanBit(span)
	return w.chained[k/64]&(1<<(k%64)) != 0
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
	t.openBytes.Add(-w.bytes)
	if !t.decider.window(s, w) {
		// Close gave up on the decisions: count the events for it.
		t.forget(s, w)
		n := uint64(len(w.errs))
		s.n.pending -= n
		s.n.abandoned += n
	}
}

// forget removes a due window from s. s.mu is held.
func (t *Transport) forget(s *shard, w *window) {
	delete(s.traces, w.id)
	t.windows.Add(-1)
	s.held -= len(w.errs)
	s.heldDue -= len(w.errs)
	t.heldBytes.Add(-w.bytes)
}

// expire hands a window to the decider when its timer fires.
func (t *Transport) expire(s *shard, w *window) {
	defer t.timers.Done()
	s.mu.Lock()
	if s.traces[w.id] == w {
		t.makeDue(s, w)
	}
	s.mu.Unlock()
}

// requestEnded shortens the window of trace id, whose last call served in
// this process ended, to the grace of WithRequestGrace. s.mu is held.
func (t *Transport) requestEnded(s *shard, id trace.TraceID) {
	w := s.traces[id]
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
	if s.traces[w.id] != w {
		return false
	}
	t.forget(s, w)
	// Until decide remembers the decision, the trace's later events are
	// queued as late ones behind it, rather than open a second window.
	s.decided.put(w.id, time.Now(), decision{placeholder: true})
	return true
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
