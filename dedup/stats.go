package dedup

// Stats counts what a Transport did with the events it was sent. At every
// instant Received == Emitted + Suppressed + Pending + Dropped, and Dropped is
// the sum of the counters that say why an event was dropped: QueueFull,
// InnerPanics, Abandoned and AfterClose.
type Stats struct {
	// Received counts every event given to SendEvent.
	Received uint64
	// Emitted counts events handed to the inner transport: root causes,
	// events passed through, late events sent, and every event of a trace
	// whose strategy failed.
	Emitted uint64
	// Suppressed counts events not sent because another event of their
	// trace was sent in their place, late ones included.
	Suppressed uint64
	// Pending counts events held in a window, waiting for a decision or
	// waiting to be handed to the inner transport.
	Pending uint64
	// Dropped counts events that did not reach the inner transport and
	// were not suppressed: the sum of QueueFull, InnerPanics, Abandoned and
	// AfterClose.
	Dropped uint64

	// PassedThrough counts events sent without a window because they had no
	// trace id or were not error events. Like every event sent, they go
	// through the emitter's queue, and are in Emitted once handed over (or
	// in QueueFull, InnerPanics or Abandoned).
	PassedThrough uint64
	// NoTrace counts error events that carried no trace id (in PassedThrough
	// too): they are not deduplicated. sentryotel's hook says once per
	// process why it stamped none (no context passed to the capture, no
	// span in it); events from elsewhere may simply not have one.
	NoTrace uint64
	// Overflow counts error events sent without a decision for lack of
	// room: their shard's share of WithMaxHeldEvents was full of windows
	// already due for a decision and their trace had none, or the queue of
	// late events to judge held WithMaxQueueSize events. Deciding the oldest trace early comes first;
	// Overflow grows only when the decisions do not keep up.
	Overflow uint64
	// Late counts events judged against their trace's decision rather than
	// in its window: those that arrived after it was decided, or while it
	// waited for the decision with no room left in its window. A trace's
	// late events wait together and are judged in chunks, one strategy
	// call for up to 48 of them with the 16 errors its decision remembers.
	Late uint64
	// LateSuppressed counts the late events suppressed as cascades of the
	// report already sent. They are in Suppressed and Late.
	LateSuppressed uint64
	// StrategyFailures counts traces whose strategy panicked or returned an
	// index out of range; all their events were sent but for those known
	// to follow from one of them (rootcause.Follows).
	StrategyFailures uint64
	// Cascades counts events of a trace whose error a downstream service
	// reported (see Call.Reported): suppressed, and in Suppressed, or with
	// WithSendCascades sent tagged, and in Emitted.
	Cascades uint64
	// Traces is the number of traces held now.
	Traces uint64
	// DecidedEarly counts traces decided before their window ended because
	// a bound was reached (WithMaxHeldEvents, WithMaxTraces,
	// WithMaxEventsPerTrace). Their later events are judged as late ones.
	DecidedEarly uint64
	// RequestEnded counts traces whose window was cut short to the grace
	// of WithRequestGrace because the last call of the trace that this
	// process served ended, or TraceComplete said its spans had arrived.
	RequestEnded uint64

	// QueueFull counts events dropped because the emitter's queue
	// (WithMaxQueueSize) was full: the inner transport did not keep up.
	QueueFull uint64
	// InnerPanics counts events whose hand-over panicked in the inner
	// transport's SendEvent; the panic went to otel.Handle.
	InnerPanics uint64
	// Abandoned counts events that Close could not hand over before its
	// deadline (WithCloseTimeout).
	Abandoned uint64
	// AfterClose counts events sent after Close, which the closed inner
	// transport would lose.
	AfterClose uint64

	// The acknowledgement's counters count calls, not events: they are
	// not part of the invariant.

	// NotAcknowledged counts error events of a call being served that did
	// not acknowledge it because the Transport could not be sure they get
	// through: Close had begun, the queue to the inner transport was a
	// quarter full (or the queue of late events to judge was), a flush of
	// the inner transport had taken over 5 s or
	// failed, or an event was dropped or sent undecided in the last 30 s,
	// or the event found no room. Their callers report their own errors.
	// sentry-go's HTTPTransport drops events silently (its own queue,
	// rate limits, network errors); what the Transport trusts is what it
	// can see: its own queue and drops, and whether the inner transport's
	// flushes succeed in time.
	NotAcknowledged uint64
	// Untracked counts calls that were not tracked because WithMaxCalls
	// calls were tracked already, or 64 of their trace.
	Untracked uint64
	// CascadeLogs counts the logs handed to the inner transport, one for
	// each error suppressed as a cascade of another service's report, when
	// the client sends logs (ClientOptions.EnableLogs); CascadeLogsDropped
	// those that found no room in the queue or came during Close. Neither
	// is an event of the invariant.
	CascadeLogs, CascadeLogsDropped uint64
	// HeldBytes is the estimated bytes of the events held in windows now.
	HeldBytes uint64
	// Untrusted counts answers to this service's calls that were not
	// honoured because they did not verify (see Call.Reported): a
	// stranger's, a partner's of another fleet, a forged one. It counts
	// answers, not events, and is not part of the invariant.
	Untrusted uint64
}

// counts is one shard's share of Stats, guarded by the shard's lock.
type counts struct {
	received, emitted, suppressed, pending uint64
	passedThrough, overflow, noTrace       uint64
	late, lateSuppressed, strategyFailures uint64
	cascades                               uint64
	decidedEarly, requestEnded             uint64
	queueFull, innerPanics, abandoned      uint64
	afterClose                             uint64
}

func (c *counts) add(o *counts) {
	c.received += o.received
	c.emitted += o.emitted
	c.suppressed += o.suppressed
	c.pending += o.pending
	c.passedThrough += o.passedThrough
	c.overflow += o.overflow
	c.noTrace += o.noTrace
	c.late += o.late
	c.lateSuppressed += o.lateSuppressed
	c.strategyFailures += o.strategyFailures
	c.cascades += o.cascades
	c.decidedEarly += o.decidedEarly
	c.requestEnded += o.requestEnded
	c.queueFull += o.queueFull
	c.innerPanics += o.innerPanics
	c.abandoned += o.abandoned
	c.afterClose += o.afterClose
}

func (c *counts) dropped() uint64 {
	return c.queueFull + c.innerPanics + c.abandoned + c.afterClose
}

// handed moves n of s's events from pending to emitted.
func (s *shard) handed(n uint64) {
	s.mu.Lock()
	s.n.pending -= n
	s.n.emitted += n
	s.mu.Unlock()
}

// drop moves n of s's events from pending to the drop counters in why.
func (s *shard) drop(n uint64, why *counts) {
	s.mu.Lock()
	s.n.pending -= n
	s.n.add(why)
	s.mu.Unlock()
}

// Stats returns the Transport's counters. Each shard is read under its lock
// and a trace's events never cross shards, so the invariant holds for the
// sum.
func (t *Transport) Stats() Stats {
	var sum counts
	var traces int
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		sum.add(&s.n)
		traces += len(s.traces)
		s.mu.Unlock()
	}
	return Stats{
		Received:           sum.received,
		Emitted:            sum.emitted,
		Suppressed:         sum.suppressed,
		Pending:            sum.pending,
		Dropped:            sum.dropped(),
		PassedThrough:      sum.passedThrough,
		Overflow:           sum.overflow,
		NoTrace:            sum.noTrace,
		Late:               sum.late,
		LateSuppressed:     sum.lateSuppressed,
		StrategyFailures:   sum.strategyFailures,
		Cascades:           sum.cascades,
		Traces:             uint64(traces),
		DecidedEarly:       sum.decidedEarly,
		RequestEnded:       sum.requestEnded,
		QueueFull:          sum.queueFull,
		InnerPanics:        sum.innerPanics,
		Abandoned:          sum.abandoned,
		AfterClose:         sum.afterClose,
		NotAcknowledged:    t.notAcknowledged.Load(),
		Untracked:          t.untracked.Load(),
		HeldBytes:          uint64(max(0, t.heldBytes.Load())),
		CascadeLogs:        t.emit.logs.sent.Load(),
		CascadeLogsDropped: t.emit.logs.dropped.Load(),
		Untrusted:          t.trust.untrusted.Load(),
	}
}
