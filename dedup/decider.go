package dedup

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/tracedup/tracedup/rootcause"
)

// decider runs the strategy on one goroutine of its own: on windows due for
// a decision and on late events. Neither SendEvent nor Flush ever waits for
// a strategy, so a slow one delays reports but blocks no caller.
type decider struct {
	t *Transport

	mu      sync.Mutex
	windows []dueWindow
	lates   []lateEvent
	stopped bool // Close gave up: what comes is abandoned
	// backlog is len(windows) + len(lates), for SendEvent to read without
	// the lock.
	backlog atomic.Int64

	wake chan struct{}
	quit chan struct{}
	done chan struct{}
}

type dueWindow struct {
	s *shard
	w *window
}

type lateEvent struct {
	s *shard
	e rootcause.Error
}

func newDecider(t *Transport) *decider {
	d := &decider{
		t:    t,
		wake: make(chan struct{}, 1),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
	go d.run()
	return d
}

// window queues w, whose events stay held in s until it is taken, and
// reports false when Close gave up on the decisions. s.mu is held.
func (d *decider) window(s *shard, w *window) bool {
	return d.enqueue(func() bool {
		d.windows = append(d.windows, dueWindow{s, w})
		return true
	})
}

// late queues a late event of s to be judged, unless the queue is full.
// s.mu is held.
func (d *decider) late(s *shard, e rootcause.Error) bool {
	return d.enqueue(func() bool {
		if len(d.lates) >= d.t.cfg.maxQueue {
			return false
		}
		d.lates = append(d.lates, lateEvent{s, e})
		return true
	})
}

// enqueue runs add under d.mu unless Close gave up, and counts and signals
// what it added.
func (d *decider) enqueue(add func() bool) bool {
	d.mu.Lock()
	if d.stopped || !add() {
		d.mu.Unlock()
		return false
	}
	d.backlog.Add(1)
	d.t.work.add(1)
	d.mu.Unlock()
	d.signal()
	return true
}

func (d *decider) signal() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *decider) run() {
	defer close(d.done)
	for {
		select {
		case <-d.wake:
		case <-d.quit:
			return
		}
		for d.step() {
		}
	}
}

// step decides one due window, or else judges one late event, and reports
// whether there was one.
func (d *decider) step() bool {
	d.mu.Lock()
	switch {
	case len(d.windows) > 0:
		w := d.windows[0]
		d.windows[0] = dueWindow{}
		d.windows = d.windows[1:]
		d.backlog.Add(-1)
		d.mu.Unlock()
		if d.t.take(w.s, w.w) {
			d.t.decide(w.s, w.w)
		}
	case len(d.lates) > 0:
		l := d.lates[0]
		d.lates[0] = lateEvent{}
		d.lates = d.lates[1:]
		d.backlog.Add(-1)
		d.mu.Unlock()
		d.t.judgeLate(l.s, l.e)
	default:
		d.windows, d.lates = nil, nil // let a storm's arrays go
		d.mu.Unlock()
		return false
	}
	d.t.work.add(-1)
	if d.t.emit.backlog.Load() > int64(d.t.cfg.maxQueue/2) {
		runtime.Gosched() // let the emitter catch up before deciding more
	}
	return true
}

// abandon stops taking work and counts the events of what is still queued
// as abandoned. What the goroutine is deciding now counts as what it
// becomes.
func (d *decider) abandon() {
	d.mu.Lock()
	d.stopped = true
	windows, lates := d.windows, d.lates
	d.windows, d.lates = nil, nil
	d.backlog.Store(0)
	d.mu.Unlock()
	for _, w := range windows {
		if d.t.take(w.s, w.w) {
			n := uint64(len(w.w.errs))
			w.s.drop(n, &counts{abandoned: n})
		}
	}
	for _, l := range lates {
		l.s.drop(1, &counts{abandoned: 1})
	}
	d.t.work.add(-len(windows) - len(lates))
}

// stop ends the goroutine; it waits for it until ctx ends. A goroutine stuck
// in a strategy ends when that call returns.
func (d *decider) stop(ctx context.Context) {
	close(d.quit)
	select {
	case <-d.done:
	case <-ctx.Done():
	}
}
