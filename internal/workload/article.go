package workload

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// ArticleInterval is the article's flush timer.
const ArticleInterval = 5 * time.Second

// Article runs the original article's ErrorDeduplicator, ported faithfully,
// over the events that a Run without deduplication sent, in virtual time:
// error events with a trace id are buffered per trace; one global timer
// flushes every buffered trace each ArticleInterval; a flush sends, per
// trace, the earliest error not on the trace's root span (else the earliest)
// as a message "[service] type: message" at level error, losing the
// exception, and drops the rest. Events without a trace id and info messages
// go to Sentry as they are, at once.
//
// With perProcess each service runs its own deduplicator with its own timer,
// as an in-process layer does; otherwise one collector receives every
// service's events, which is the article at its best. The timers' phases
// are drawn from seed.
func Article(o *Outcome, perProcess bool, seed uint64) []Report {
	rng := rand.New(rand.NewPCG(seed, 0xa271c1e))
	phase := map[string]time.Duration{}
	for _, s := range append(o.Plan.Graph.Services, Service{}) { // drawn in a fixed order
		phase[s.Name] = time.Duration(rng.Float64() * float64(ArticleInterval))
	}
	return article(o, perProcess, phase)
}

// article is Article with the timers' phases given: the first tick of the
// timer of process (a service, or "" for the one collector) is at its phase.
func article(o *Outcome, perProcess bool, phase map[string]time.Duration) []Report {
	type pending struct {
		truth             *Event
		service, typ, msg string
		isRootSpan        bool
		arrived           time.Duration
		flushAt           time.Duration
		group             string
	}
	var out []Report
	var buf []pending
	for _, s := range o.Sent {
		t := s.Truth
		if t == nil || t.Role == Info {
			continue
		}
		traceID := s.Event.Tags["otel.trace_id"]
		if traceID == "" {
			out = append(out, Report{Truth: t, Issue: Issue(s.Event), At: t.At})
			continue
		}
		process := ""
		if perProcess {
			process = s.Service
		}
		// The next tick of the process's timer after the event is added.
		p := phase[process]
		k := (t.At - p + ArticleInterval) / ArticleInterval
		arrived := t.At
		if perProcess {
			arrived += t.Skew // time.time() on the service's own clock
		}
		_, hasParent := s.Event.Contexts["trace"]["parent_span_id"]
		typ := ""
		if n := len(s.Event.Exception); n > 0 {
			typ = s.Event.Exception[n-1].Type
		}
		buf = append(buf, pending{
			truth: t, service: s.Service, typ: typ, msg: t.Message,
			isRootSpan: !hasParent, arrived: arrived,
			flushAt: p + k*ArticleInterval, group: process + "/" + traceID,
		})
	}
	// A flush takes, per trace, what arrived since the previous tick.
	type batch struct {
		flushAt time.Duration
		group   string
	}
	batches := map[batch][]pending{}
	var keys []batch
	for _, e := range buf {
		b := batch{e.flushAt, e.group}
		if _, ok := batches[b]; !ok {
			keys = append(keys, b)
		}
		batches[b] = append(batches[b], e)
	}
	for _, b := range keys {
		errs := batches[b]
		// _find_root_cause: sorted by time, the first not on the root span.
		slices.SortStableFunc(errs, func(a, b pending) int { return int(a.arrived - b.arrived) })
		root := errs[0]
		for _, e := range errs {
			if !e.isRootSpan {
				root = e
				break
			}
		}
		// _send_to_sentry: capture_message, the exception is lost.
		msg := fmt.Sprintf("[%s] %s: %s", root.service, root.typ, root.msg)
		out = append(out, Report{Truth: root.truth, Issue: messageIssue(msg), At: b.flushAt})
	}
	return out
}
