package dedup

// Stats counts what a Transport did with the events it was sent. At every
// instant Received == Emitted + Suppressed + Pending.
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
	// Pending counts events held in a window or waiting to be handed to the
	// inner transport.
	Pending uint64

	// PassedThrough counts events sent at once because they had no trace
	// id, were not error events, or arrived after Close. They are in Emitted.
	PassedThrough uint64
	// Overflow counts events sent at once because a bound was reached
	// (WithMaxTraces, WithMaxEventsPerTrace). They are in Emitted.
	Overflow uint64
	// Late counts events that arrived after their trace's report was sent.
	Late uint64
	// LateSuppressed counts the late events suppressed as cascades of the
	// report already sent. They are in Suppressed and Late.
	LateSuppressed uint64
	// StrategyFailures counts traces whose strategy panicked or returned an
	// index out of range; all their events were sent.
	StrategyFailures uint64
	// Cascades counts events of a trace whose error a downstream service
	// reported (see HeaderReported): suppressed, and in Suppressed, or with
	// WithSendCascades sent tagged, and in Emitted.
	Cascades uint64
	// Traces is the number of traces held now.
	Traces uint64
}

// counts is one shard's share of Stats, guarded by the shard's lock.
type counts struct {
	received, emitted, suppressed, pending uint64
	passedThrough, overflow                uint64
	late, lateSuppressed, strategyFailures uint64
	cascades                               uint64
}

func (c *counts) add(o *counts) {
	c.received += o.received
	c.emitted += o.emitted
	c.suppressed += o.suppressed
	c.pending += o.pending
	c.passedThrough += o.passedThrough
	c.overflow += o.overflow
	c.late += o.late
	c.lateSuppressed += o.lateSuppressed
	c.strategyFailures += o.strategyFailures
	c.cascades += o.cascades
}

// handed moves n of s's events from pending to emitted.
func (s *shard) handed(n uint64) {
	s.mu.Lock()
	s.n.pending -= n
	s.n.emitted += n
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
		Received:         sum.received,
		Emitted:          sum.emitted,
		Suppressed:       sum.suppressed,
		Pending:          sum.pending,
		PassedThrough:    sum.passedThrough,
		Overflow:         sum.overflow,
		Late:             sum.late,
		LateSuppressed:   sum.lateSuppressed,
		StrategyFailures: sum.strategyFailures,
		Cascades:         sum.cascades,
		Traces:           uint64(traces),
	}
}
