package dedup

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/getsentry/sentry-go"
	"go.opentelemetry.io/otel"
)

// burstFlushTimeout bounds the wait for the inner transport to send a burst.
const burstFlushTimeout = 30 * time.Second

// work counts what is outstanding across the decider and the emitter:
// windows due for a decision, late events to judge, events queued for or
// being handed to the inner transport. Flush and Close wait for it to reach
// zero.
type work struct {
	mu          sync.Mutex
	outstanding int
	idle        chan struct{} // closed while outstanding == 0
}

func newWork() *work {
	w := &work{idle: make(chan struct{})}
	close(w.idle)
	return w
}

// add adds delta to the outstanding count.
func (w *work) add(delta int) {
	if delta == 0 {
		return
	}
	w.mu.Lock()
	if w.outstanding == 0 && delta > 0 {
		w.idle = make(chan struct{})
	}
	w.outstanding += delta
	if w.outstanding == 0 {
		close(w.idle)
	}
	w.mu.Unlock()
}

// wait waits until nothing is outstanding, or ctx ends, and reports which.
func (w *work) wait(ctx context.Context) bool {
	for {
		w.mu.Lock()
		if w.outstanding == 0 {
			w.mu.Unlock()
			return true
		}
		idle := w.idle
		w.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			return false
		}
	}
}

// emitter hands events to the inner transport from one goroutine, flushing
// it after every burst events so that its queue never overflows. Its queue
// holds at most max events; past it, events are dropped and counted, as
// OTel's BatchSpanProcessor drops spans past its queue.
type emitter struct {
	next  sentry.Transport
	burst int
	max   int
	work  *work

	mu      sync.Mutex
	room    *sync.Cond // signalled when the queue shrinks or stops
	queue   []emission
	stopped bool // Close gave up: what comes is abandoned
	// backlog is len(queue), for SendEvent to read without the lock.
	backlog atomic.Int64

	wake chan struct{}
	quit chan struct{}
	done chan struct{}
}

type emission struct {
	event *sentry.Event
	from  *shard
}

func newEmitter(next sentry.Transport, burst, max int, w *work) *emitter {
	e := &emitter{
		next:  next,
		burst: burst,
		max:   max,
		work:  w,
		wake:  make(chan struct{}, 1),
		quit:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	e.room = sync.NewCond(&e.mu)
	go e.run()
	return e
}

// push queues events of s, each counted pending in s, and drops those past
// the queue's bound, or every one once Close gave up. It never waits.
func (e *emitter) push(s *shard, events ...*sentry.Event) {
	e.mu.Lock()
	e.pushLocked(s, events, e.max)
}

// pushWait queues events of s as push does, but first waits for room in the
// queue, so that the decider, which calls it, slows down to the inner
// transport's pace instead of dropping reports: windows due for a decision
// then wait in their shards, within the budget of held events. A decision
// larger than the queue is queued whole once the queue is empty.
func (e *emitter) pushWait(s *shard, events ...*sentry.Event) {
	e.mu.Lock()
	for !e.stopped && len(e.queue) > 0 && len(e.queue)+len(events) > e.max {
		e.room.Wait()
	}
	e.pushLocked(s, events, max(e.max, len(events)))
}

// pushLocked is push's body, for a queue of at most limit events; it
// releases e.mu.
func (e *emitter) pushLocked(s *shard, events []*sentry.Event, limit int) {
	if len(events) == 0 {
		e.mu.Unlock()
		return
	}
	room := limit - len(e.queue)
	if e.stopped {
		room = 0
	}
	n := min(len(events), max(room, 0))
	for _, ev := range events[:n] {
		e.queue = append(e.queue, emission{ev, s})
	}
	stopped := e.stopped
	e.backlog.Store(int64(len(e.queue)))
	e.work.add(n)
	e.mu.Unlock()
	if dropped := uint64(len(events) - n); dropped > 0 {
		if stopped {
			s.drop(dropped, &counts{abandoned: dropped})
		} else {
			s.drop(dropped, &counts{queueFull: dropped})
		}
	}
	if n > 0 {
		select {
		case e.wake <- struct{}{}:
		default:
		}
	}
}

func (e *emitter) run() {
	defer close(e.done)
	sent := 0
	for {
		select {
		case <-e.wake:
		case <-e.quit:
			return
		}
		for {
			e.mu.Lock()
			if len(e.queue) == 0 {
				e.queue = nil // let a big burst's array go
				e.mu.Unlock()
				break
			}
			em := e.queue[0]
			e.queue[0] = emission{}
			e.queue = e.queue[1:]
			e.backlog.Store(int64(len(e.queue)))
			e.room.Signal() // the decider is the one goroutine that waits
			e.mu.Unlock()

			if err := safely("SendEvent", func() { e.next.SendEvent(em.event) }); err != nil {
				otel.Handle(err)
				em.from.drop(1, &counts{innerPanics: 1})
			} else {
				em.from.handed(1)
			}
			if sent++; sent >= e.burst {
				sent = 0
				ctx, cancel := context.WithTimeout(context.Background(), burstFlushTimeout)
				if err := safely("FlushWithContext", func() { e.next.FlushWithContext(ctx) }); err != nil {
					otel.Handle(err)
				}
				cancel()
			}
			e.work.add(-1)
		}
	}
}

// abandon stops taking events and counts those still queued as abandoned.
// An event being handed over when it is called still counts as what it
// becomes.
func (e *emitter) abandon() {
	e.mu.Lock()
	e.stopped = true
	queue := e.queue
	e.queue = nil
	e.backlog.Store(0)
	e.room.Broadcast()
	e.mu.Unlock()
	for _, em := range queue {
		em.from.drop(1, &counts{abandoned: 1})
	}
	e.work.add(-len(queue))
}

// stop ends the goroutine; it waits for it until ctx ends. A goroutine stuck
// in the inner transport ends when that call returns.
func (e *emitter) stop(ctx context.Context) {
	close(e.quit)
	select {
	case <-e.done:
	case <-ctx.Done():
	}
}

// panicError is a recovered panic with its value and the stack it was
// raised on, as x/sync's singleflight keeps them.
type panicError struct {
	what  string
	value any
	stack []byte
}

func (p *panicError) Error() string {
	return fmt.Sprintf("dedup: inner transport's %s panicked: %v\n\n%s", p.what, p.value, p.stack)
}

// safely calls f and returns what it panicked with, if it did.
func safely(what string, f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &panicError{what: what, value: r, stack: debug.Stack()}
		}
	}()
	f()
	return nil
}
