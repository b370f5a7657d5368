package dedup

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
)

// loop is the goroutine of a worker (the decider, the emitter): it runs
// step until step reports that there is nothing left, each time it is
// signalled, until it is stopped. One channel wakes it, one stops it, one
// says it ended, as in OTel's BatchSpanProcessor.
type loop struct {
	wake chan struct{}
	quit chan struct{}
	done chan struct{}
}

// startLoop starts a goroutine that calls step until it returns false,
// whenever signalled.
func startLoop(step func() bool) *loop {
	l := &loop{wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for {
			select {
			case <-l.wake:
			case <-l.quit:
				return
			}
			for step() {
			}
		}
	}()
	return l
}

// signal wakes the loop, or leaves it awake; it never blocks.
func (l *loop) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// stop ends the goroutine once its step returns; it waits for that until
// ctx ends. A goroutine stuck in user code ends when that call returns.
func (l *loop) stop(ctx context.Context) {
	close(l.quit)
	select {
	case <-l.done:
	case <-ctx.Done():
	}
}

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
