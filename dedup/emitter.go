package dedup

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/getsentry/sentry-go"
	"go.opentelemetry.io/otel"
)

// burstFlushTimeout bounds the wait for the inner transport to send a burst.
const burstFlushTimeout = 30 * time.Second

// Signals of trouble that make the Transport stop acknowledging (see
// [Transport.sure]).
const (
	// troubleMemory is how long after a drop, an event sent undecided or a
	// failed flush the Transport acknowledges nothing.
	troubleMemory = 30 * time.Second
	// slowFlush is how long a flush of the inner transport may take before
	// the Transport stops acknowledging until it returns: sentry-go's
	// HTTPTransport sends one request at a time, so a burst of 100 events
	// to a healthy Sentry flushes in well under it.
	slowFlush = 5 * time.Second
)

// emitter hands events to the inner transport from one goroutine, flushing
// it after every burst events so that its queue never overflows. Its queue
// holds at most max events and maxBytes of their estimated bytes; past
// either, events are dropped and counted, as OTel's BatchSpanProcessor drops
// spans, except events that acknowledged a call (or stand for one that
// did), which are queued past the bounds, ahead of the others, and never
// dropped: the Transport stops acknowledging long before the queue fills
// (a quarter full), so there are never many of them.
type emitter struct {
	next     sentry.Transport
	burst    int
	max      int
	maxBytes int64
	work     *work

	mu   sync.Mutex
	room *sync.Cond // signalled when the queue shrinks or stops
	// acked are the events that acknowledged a call, handed over first;
	// queue the others.
	acked, queue []emission
	bytes        int64 // the estimated bytes of both
	stopped      bool  // Close gave up: what comes is abandoned
	isClosing    bool  // Close began: no more burst flushes
	cancelFlush  context.CancelFunc
	// backlog is len(acked) + len(queue), for SendEvent to read without
	// the lock.
	backlog atomic.Int64
	// backlogBytes is bytes, for the same reason.
	backlogBytes atomic.Int64
	// troubleAt is when something was last dropped, sent undecided or
	// failed to flush; flushingSince when the flush in progress began (0
	// when none is). Both in Unix nanoseconds.
	troubleAt, flushingSince atomic.Int64

	loop *loop
	sent int // events handed over since the last flush
	// logs counts the Transport's own logs: handed over, and dropped.
	logs struct{ sent, dropped atomic.Uint64 }
}

// emission is one event queued for the inner transport, counted pending in
// from; or, with a nil from, a log of the Transport's own (see
// Transport.cascadeLog), counted in logs.
type emission struct {
	event *sentry.Event
	size  int64
	from  *shard
}

func newEmitter(next sentry.Transport, burst, max int, maxBytes int64, w *work) *emitter {
	e := &emitter{
		next:     next,
		burst:    burst,
		max:      max,
		maxBytes: maxBytes,
		work:     w,
	}
	e.room = sync.NewCond(&e.mu)
	e.loop = startLoop(e.step)
	return e
}

// sure reports whether events queued now can be expected to reach the inner
// transport: the queue is under a quarter full, no flush is slow and there
// was no trouble for troubleMemory.
func (e *emitter) sure(now time.Time) bool {
	if e.backlog.Load() > int64(e.max/4) {
		return false
	}
	if e.backlogBytes.Load() > e.maxBytes/4 {
		return false
	}
	t := now.UnixNano()
	if since := e.flushingSince.Load(); since != 0 && t-since > int64(slowFlush) {
		return false
	}
	last := e.troubleAt.Load()
	return last == 0 || t-last > int64(troubleMemory)
}

// trouble records that something went wrong at now.
func (e *emitter) trouble(now time.Time) { e.troubleAt.Store(now.UnixNano()) }

// push queues an event of s, counted pending in s, of the estimated size,
// or drops it past the queue's bounds, or once Close gave up. An acked
// event is queued past the bounds. It never waits.
func (e *emitter) push(s *shard, ev *sentry.Event, size int64, acked bool) {
	e.mu.Lock()
	e.pushLocked(s, outbox{events: []*sentry.Event{ev}, sizes: []int64{size}}, acked, false)
}

// pushLog queues a log of the Transport's own, or drops it, counted, past
// the queue's bounds or once Close began: a log is never worth a report.
func (e *emitter) pushLog(ev *sentry.Event, size int64) {
	e.mu.Lock()
	if e.stopped || e.isClosing || e.queued() >= e.max || e.queued() > 0 && e.bytes+size > e.maxBytes {
		e.mu.Unlock()
		e.logs.dropped.Add(1)
		return
	}
	e.queue = append(e.queue, emission{event: ev, size: size})
	e.bytes += size
	e.publish()
	e.work.add(1)
	e.mu.Unlock()
	e.loop.signal()
}

// pushWait queues the events of out, of s, as push does, but first waits for
// room in the queue, so that the decider, which calls it, slows down to the
// inner transport's pace instead of dropping reports: windows due for a
// decision then wait in their shards, within the budget. A decision larger
// than the queue is queued whole once the queue is empty.
func (e *emitter) pushWait(s *shard, out outbox, acked bool) {
	var size int64
	for _, n := range out.sizes {
		size += n
	}
	e.mu.Lock()
	for !e.stopped && e.queued() > 0 &&
		(e.queued()+len(out.events) > e.max || e.bytes+size > e.maxBytes) {
		e.room.Wait()
	}
	e.pushLocked(s, out, acked, true)
}

func (e *emitter) queued() int { return len(e.acked) + len(e.queue) }

// publish makes the queue's length and bytes readable without e.mu: by
// sure, which SendEvent calls under a shard's lock. e.mu is held.
func (e *emitter) publish() {
	e.backlog.Store(int64(e.queued()))
	e.backlogBytes.Store(e.bytes)
}

// pushLocked is push's body; whole says that out is queued whole whatever
// the bounds, as pushWait does once there is room. It releases e.mu.
func (e *emitter) pushLocked(s *shard, out outbox, acked, whole bool) {
	if len(out.events) == 0 {
		e.mu.Unlock()
		return
	}
	n := 0
	for i, ev := range out.events {
		fits := whole || acked || e.queued() < e.max && (e.queued() == 0 || e.bytes+out.sizes[i] <= e.maxBytes)
		if e.stopped || !fits {
			break
		}
		em := emission{ev, out.sizes[i], s}
		if acked {
			e.acked = append(e.acked, em)
		} else {
			e.queue = append(e.queue, em)
		}
		e.bytes += em.size
		n++
	}
	stopped := e.stopped
	e.publish()
	e.work.add(n)
	e.mu.Unlock()
	if dropped := uint64(len(out.events) - n); dropped > 0 {
		e.trouble(time.Now())
		if stopped {
			s.drop(dropped, &counts{abandoned: dropped})
		} else {
			s.drop(dropped, &counts{queueFull: dropped})
		}
	}
	if n > 0 {
		e.loop.signal()
	}
}

// take takes the next event to hand over, acknowledged ones first, and
// reports whether there was one. e.mu is held.
func (e *emitter) take() (emission, bool) {
	q := &e.queue
	if len(e.acked) > 0 {
		q = &e.acked
	}
	if len(*q) == 0 {
		e.acked, e.queue = nil, nil // let a big burst's arrays go
		return emission{}, false
	}
	em := (*q)[0]
	(*q)[0] = emission{}
	*q = (*q)[1:]
	e.bytes -= em.size
	e.publish()
	e.room.Signal() // the decider is the one goroutine that waits
	return em, true
}

// step hands one event to the inner transport, flushing it after a burst,
// and reports whether there was one.
func (e *emitter) step() bool {
	e.mu.Lock()
	em, ok := e.take()
	e.mu.Unlock()
	if !ok {
		return false
	}
	if err := safely("SendEvent", func() { e.next.SendEvent(em.event) }); err != nil {
		otel.Handle(err)
		e.trouble(time.Now())
		if em.from == nil {
			e.logs.dropped.Add(1)
		} else {
			em.from.drop(1, &counts{innerPanics: 1})
		}
	} else if em.from == nil {
		e.logs.sent.Add(1)
	} else {
		em.from.handed(1)
	}
	if e.sent++; e.sent >= e.burst {
		e.sent = 0
		e.flush()
	}
	e.work.add(-1)
	return true
}

// flush flushes the inner transport after a burst, at most burstFlushTimeout
// and not once Close began: Close cuts a flush in progress short, so that
// what is left is handed over within its deadline rather than wait behind a
// Sentry that does not answer.
func (e *emitter) flush() {
	e.mu.Lock()
	if e.isClosing {
		e.mu.Unlock()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), burstFlushTimeout)
	e.cancelFlush = cancel
	e.mu.Unlock()
	e.flushingSince.Store(time.Now().UnixNano())
	ok := false
	if err := safely("FlushWithContext", func() { ok = e.next.FlushWithContext(ctx) }); err != nil {
		otel.Handle(err)
	}
	e.flushingSince.Store(0)
	if !ok {
		e.trouble(time.Now())
	}
	e.mu.Lock()
	e.cancelFlush = nil
	e.mu.Unlock()
	cancel()
}

// beginClose stops burst flushes and cuts one in progress short.
func (e *emitter) beginClose() {
	e.mu.Lock()
	e.isClosing = true
	if e.cancelFlush != nil {
		e.cancelFlush()
	}
	e.mu.Unlock()
}

// abandon stops taking events and counts those still queued as abandoned.
// An event being handed over when it is called still counts as what it
// becomes.
func (e *emitter) abandon() {
	e.mu.Lock()
	e.stopped = true
	queue := append(e.acked, e.queue...)
	e.acked, e.queue, e.bytes = nil, nil, 0
	e.publish()
	e.room.Broadcast()
	e.mu.Unlock()
	for _, em := range queue {
		if em.from == nil {
			e.logs.dropped.Add(1)
		} else {
			em.from.drop(1, &counts{abandoned: 1})
		}
	}
	e.work.add(-len(queue))
}
