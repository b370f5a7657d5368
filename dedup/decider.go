package dedup

import (
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/tracedup/tracedup/rootcause"
)

// decider runs the strategy on one goroutine of its own: on windows due for
// a decision and on late events. Neither SendEvent nor Flush ever waits for
// a strategy, so a slow one delays reports but blocks no caller.
type decider struct {
	t *Transport

	mu      sync.Mutex
	windows []dueWindow
	// lates lists the traces with late events to judge, oldest first; a
	// trace's late events wait together in its one entry, found through
	// lateOf, so that they are judged together.
	lates  []*lateTrace
	lateOf map[trace.TraceID]*lateTrace
	// lateEvents counts the events in lates: WithMaxQueueSize bounds it;
	// lateBytes their estimated bytes, which the budget bounds.
	lateEvents int
	lateBytes  int64
	stopped    bool // Close gave up: what comes is abandoned
	// backlog is len(windows) + lateEvents, for SendEvent to read without
	// the lock.
	backlog atomic.Int64
	// crowded says that the late queue is over a quarter of either of its
	// bounds: the Transport then acknowledges nothing (see
	// [Transport.sure]), since an event that acknowledges is queued past
	// the bounds.
	crowded atomic.Bool

	loop *loop
}

type dueWindow struct {
	s *shard
	w *window
}

// lateTrace is one trace's late events waiting to be judged, with their
// events, in the order they arrived.
type lateTrace struct {
	s     *shard
	id    trace.TraceID
	errs  []rootcause.Error
	sizes []int64
	acked bool // one of errs acknowledged a call
}

// lateChunk is how many of a trace's late events one strategy call judges,
// beside the at most maxRemembered errors remembered of its decision. A call
// then sees at most 16 + 48 = 64 errors: DefaultMaxEventsPerTrace, so that
// judging late events costs no more a call than deciding a window early
// does, and the 64 errors up to which the default strategy allocates
// nothing. rootcause.Split compares every pair of errors: one call over a
// storm's thousand queued events would cost some 250 times as much as one
// over 64, and would hold every other trace's decision that long.
const lateChunk = 48

func newDecider(t *Transport) *decider {
	d := &decider{
		t:      t,
		lateOf: make(map[trace.TraceID]*lateTrace),
	}
	d.loop = startLoop(d.step)
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

// late queues a late event of s, of trace id and estimated at size bytes,
// to be judged with the other late events of its trace, unless the queue
// holds WithMaxQueueSize late events or its share of the budget already. An
// event that will acknowledge a call (protect) is queued past both: what it
// becomes must not be dropped. s.mu is held.
func (d *decider) late(s *shard, id trace.TraceID, e rootcause.Error, size int64, protect bool) bool {
	return d.enqueue(func() bool {
		full := d.lateEvents >= d.t.cfg.maxQueue || d.lateEvents > 0 && d.lateBytes+size > d.t.budget.late
		if full && !protect {
			return false
		}
		if full {
			// Past the bounds, for an event that acknowledges: nothing
			// more may, until the queue has room again.
			d.t.emit.trouble(time.Now())
		}
		lt := d.lateOf[id]
		if lt == nil {
			lt = &lateTrace{s: s, id: id}
			d.lateOf[id] = lt
			d.lates = append(d.lates, lt)
		}
		lt.errs = append(lt.errs, e)
		lt.sizes = append(lt.sizes, size)
		lt.acked = lt.acked || protect
		d.lateEvents++
		d.lateBytes += size
		d.noteCrowding()
		return true
	})
}

// noteCrowding sets crowded from the late queue's fill. d.mu is held.
func (d *decider) noteCrowding() {
	d.crowded.Store(d.lateEvents > d.t.cfg.maxQueue/4 || d.lateBytes > d.t.budget.late/4)
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
	d.loop.signal()
	return true
}

// step decides one due window, or else judges a chunk of the oldest
// trace's late events, and reports whether there was one.
func (d *decider) step() bool {
	d.mu.Lock()
	done := 1
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
		lt, chunk, sizes := d.takeLate()
		done = len(chunk)
		d.mu.Unlock()
		d.t.judgeLate(lt.s, lt.id, chunk, sizes, lt.acked)
	default:
		d.windows, d.lates = nil, nil // let a storm's arrays go
		d.mu.Unlock()
		return false
	}
	d.t.work.add(-done)
	if d.t.emit.backlog.Load() > int64(d.t.cfg.maxQueue/2) {
		runtime.Gosched() // let the emitter catch up before deciding more
	}
	return true
}

// takeLate takes at most lateChunk late events of the oldest trace in
// lates. A trace with more left goes to the back, so that one trace's storm
// does not hold the others' late events. d.mu is held.
func (d *decider) takeLate() (*lateTrace, []rootcause.Error, []int64) {
	lt := d.lates[0]
	d.lates[0] = nil
	d.lates = d.lates[1:]
	chunk, sizes := lt.errs, lt.sizes
	if len(chunk) > lateChunk {
		chunk, sizes = slices.Clone(lt.errs[:lateChunk]), slices.Clone(lt.sizes[:lateChunk])
		clear(lt.errs[:lateChunk]) // the queue must not keep their events alive
		lt.errs, lt.sizes = lt.errs[lateChunk:], lt.sizes[lateChunk:]
		d.lates = append(d.lates, lt)
	} else {
		delete(d.lateOf, lt.id)
	}
	d.lateEvents -= len(chunk)
	for _, n := range sizes {
		d.lateBytes -= n
	}
	d.backlog.Add(-int64(len(chunk)))
	d.noteCrowding()
	return lt, chunk, sizes
}

// abandon stops taking work and counts the events of what is still queued
// as abandoned. What the goroutine is deciding now counts as what it
// becomes.
func (d *decider) abandon() {
	d.mu.Lock()
	d.stopped = true
	windows, lates, lateEvents := d.windows, d.lates, d.lateEvents
	d.windows, d.lates, d.lateEvents, d.lateBytes = nil, nil, 0, 0
	clear(d.lateOf)
	d.backlog.Store(0)
	d.crowded.Store(false)
	d.mu.Unlock()
	for _, w := range windows {
		if d.t.take(w.s, w.w) {
			n := uint64(len(w.w.errs))
			w.s.drop(n, &counts{abandoned: n})
		}
	}
	for _, lt := range lates {
		n := uint64(len(lt.errs))
		lt.s.drop(n, &counts{abandoned: n})
	}
	d.t.work.add(-len(windows) - lateEvents)
}
