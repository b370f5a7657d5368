package dedup

import (
	"context"
	"sync"
	"time"

	"github.com/getsentry/sentry-go"
)

// burstFlushTimeout bounds the wait for the inner transport to send a burst.
const burstFlushTimeout = 30 * time.Second

// emitter hands decided events to the inner transport from one goroutine,
// flushing it after every burst events so that its queue never overflows.
type emitter struct {
	next  sentry.Transport
	burst int

	mu          sync.Mutex
	queue       []emission
	outstanding int           // reserved, queued or being handed over
	idle        chan struct{} // closed while outstanding == 0

	wake chan struct{}
	quit chan struct{}
	done chan struct{}
}

type emission struct {
	event *sentry.Event
	from  *shard
}

func newEmitter(next sentry.Transport, burst int) *emitter {
	e := &emitter{
		next:  next,
		burst: burst,
		idle:  make(chan struct{}),
		wake:  make(chan struct{}, 1),
		quit:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	close(e.idle)
	go e.run()
	return e
}

// reserve announces n emissions to come, so waitIdle waits for them.
func (e *emitter) reserve(n int) {
	e.mu.Lock()
	if e.outstanding == 0 {
		e.idle = make(chan struct{})
	}
	e.outstanding += n
	e.mu.Unlock()
}

// push queues events from s and releases reserved emissions.
func (e *emitter) push(s *shard, events []*sentry.Event, reserved int) {
	e.mu.Lock()
	for _, ev := range events {
		e.queue = append(e.queue, emission{ev, s})
	}
	e.settle(len(events) - reserved)
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// settle adds delta to outstanding. e.mu is held.
func (e *emitter) settle(delta int) {
	if e.outstanding == 0 && delta > 0 {
		e.idle = make(chan struct{})
	}
	e.outstanding += delta
	if e.outstanding == 0 && delta < 0 {
		close(e.idle)
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
			e.mu.Unlock()

			e.next.SendEvent(em.event)
			em.from.handed(1)
			if sent++; sent >= e.burst {
				sent = 0
				ctx, cancel := context.WithTimeout(context.Background(), burstFlushTimeout)
				e.next.FlushWithContext(ctx)
				cancel()
			}

			e.mu.Lock()
			e.settle(-1)
			e.mu.Unlock()
		}
	}
}

// waitIdle waits until every reserved and queued event was handed over, or
// ctx ends, and reports which.
func (e *emitter) waitIdle(ctx context.Context) bool {
	for {
		e.mu.Lock()
		if e.outstanding == 0 {
			e.mu.Unlock()
			return true
		}
		idle := e.idle
		e.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			return false
		}
	}
}

// stop ends the goroutine and waits for it. Callers wait for idle first.
func (e *emitter) stop() {
	close(e.quit)
	<-e.done
}
