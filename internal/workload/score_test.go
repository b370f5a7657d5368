package workload

import (
	"testing"
	"time"

	"github.com/getsentry/sentry-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// handMade is a plan of three requests: in request 0 a failure at a with a
// symptom at b, and an independent failure at c; in request 1 a failure at
// d, repeated on a retry, with a symptom at e; in request 2 a failure at f;
// and an info message.
func handMade() *Plan {
	p := &Plan{Graph: &Graph{Services: []Service{{Name: "a"}, {Name: "b"}, {Name: "c"}, {Name: "d"}, {Name: "e"}, {Name: "f"}}}}
	add := func(req, inc int, role Role, service, typ string, at time.Duration) *Event {
		ev := &Event{ID: len(p.Events), Request: req, Incident: inc, Role: role, Service: service, Type: typ,
			Message: "req 7: " + typ, Traced: true, At: at}
		p.Events = append(p.Events, ev)
		if inc >= 0 {
			if inc == len(p.Incidents) {
				p.Incidents = append(p.Incidents, &Incident{ID: inc, Request: req, Origin: ev})
			}
			p.Incidents[inc].Events = append(p.Incidents[inc].Events, ev)
		}
		return ev
	}
	add(0, 0, Origin, "a", "*a.Timeout", 1*time.Second)
	add(0, 0, Symptom, "b", "*b.Downstream", 1100*time.Millisecond)
	add(0, 1, Origin, "c", "*c.NilMap", 1200*time.Millisecond)
	add(1, 2, Origin, "d", "*d.Timeout", 2*time.Second)
	add(1, 2, Repeat, "d", "*d.Timeout", 2100*time.Millisecond)
	add(1, 2, Symptom, "e", "*e.Downstream", 2200*time.Millisecond)
	add(2, 3, Origin, "f", "*f.Internal", 3*time.Second)
	info := add(2, -1, Info, "f", "", 3*time.Second)
	info.Message = "cache warmed"
	return p
}

func TestScore(t *testing.T) {
	p := handMade()
	ev := p.Events
	reports := []Report{
		{Truth: ev[1], Issue: "b *b.Downstream", At: 6 * time.Second},      // incident 0's first report: a symptom
		{Truth: ev[0], Issue: "a *a.Timeout", At: 6500 * time.Millisecond}, // then its origin
		{Truth: ev[2], Issue: "c *c.NilMap", At: 6200 * time.Millisecond},
		{Truth: ev[4], Issue: "d *d.Timeout", At: 9 * time.Second}, // a repeat stands for the origin
	}
	m := Score(p, reports)
	assert.InDelta(t, 3.0/7, m.Reduction, 1e-9)
	assert.InDelta(t, 3.0/7, m.Limit, 1e-9)
	m.Reduction, m.Limit = 0, 0
	assert.Equal(t, Metrics{
		EventsIn: 7, Sent: 4, Incidents: 4, HiddenOrigins: map[string]int{"*f.Internal": 1},
		Recalled: 3, Recall: 0.75, Precision: 0.75, Hidden: 1,
		Named:       2,               // c, and d through its repeat; a's first report named b
		SplitTraces: 1,               // request 0: three reports, two incidents
		DelayP50:    5 * time.Second, // of 5 s, 5 s, 7 s
		DelayP99:    7 * time.Second,
		Issues:      4,
	}, m)

	none := Score(p, nil)
	assert.Equal(t, 4, none.Hidden)
	assert.Zero(t, none.Recall)
	assert.Zero(t, none.Precision)
	assert.Equal(t, 1.0, none.Reduction)
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i))
	}
	assert.Equal(t, time.Duration(50), percentile(ds, 0.5))
	assert.Equal(t, time.Duration(99), percentile(ds, 0.99))
	assert.Equal(t, time.Duration(7), percentile([]time.Duration{7}, 0.99))
	assert.Zero(t, percentile(nil, 0.5))
}

func TestIssue(t *testing.T) {
	ev := &sentry.Event{ServerName: "host", Tags: map[string]string{"service.name": "pay"},
		Exception: []sentry.Exception{{Type: "*errors.errorString"}, {Type: "*pay.Declined"}}}
	assert.Equal(t, "pay *pay.Declined", Issue(ev))
	delete(ev.Tags, "service.name")
	assert.Equal(t, "host *pay.Declined", Issue(ev))
	assert.Equal(t, Issue(&sentry.Event{Message: "req 12: order 4bf92f3577b34da6 failed"}),
		Issue(&sentry.Event{Message: "req 7: order 00f067aa0ba902b7 failed"}))
}

// sentOf makes what a run without deduplication sent: every event of p, on
// trace "t<request>", on a root span where root says so.
func sentOf(p *Plan, root map[string]bool) *Outcome {
	o := &Outcome{Plan: p}
	for _, ev := range p.Events {
		trace := sentry.Context{"trace_id": "t", "span_id": "s"}
		if !root[ev.Service] {
			trace["parent_span_id"] = "p"
		}
		se := &sentry.Event{
			Tags:      map[string]string{"otel.trace_id": "t" + string(rune('0'+ev.Request)), "service.name": ev.Service},
			Contexts:  map[string]sentry.Context{"trace": trace},
			Exception: []sentry.Exception{{Type: ev.Type}},
		}
		if !ev.Traced {
			delete(se.Tags, "otel.trace_id")
		}
		o.Sent = append(o.Sent, Sent{Service: ev.Service, Event: se, Truth: ev, At: ev.At})
	}
	return o
}

// TestArticle: the article's collector flushes every trace on one 5 s timer
// and sends, per trace, the earliest error off the root span, as a message.
func TestArticle(t *testing.T) {
	p := handMade()
	// Request 1 straddles the tick at 5 s: its symptom comes at 5.2 s.
	p.Events[5].At = 5200 * time.Millisecond
	// The root span of request 0 is b's, so c, later, is picked over b.
	o := sentOf(p, map[string]bool{"b": true})
	reports := article(o, false, map[string]time.Duration{"": 0})
	require.Len(t, reports, 4)
	got := map[int]Report{}
	for _, r := range reports {
		got[r.Truth.ID] = r
	}
	ev := p.Events
	assert.Equal(t, Report{Truth: ev[0], Issue: "message [a] *a.Timeout: req <int>: *a.Timeout", At: 5 * time.Second}, got[0],
		"request 0: a is the earliest off the root span; c, an independent failure, is lost")
	assert.Contains(t, got, 3, "request 1 before the tick: d")
	assert.Equal(t, 10*time.Second, got[5].At, "request 1 after the tick: e, a second report of one incident")
	assert.Equal(t, 5*time.Second, got[6].At, "request 2: f")

	m := Score(p, reports)
	assert.Equal(t, 1, m.SplitTraces)
	assert.Equal(t, 1, m.Hidden, "c")

	// Where the earliest error is on the root span, the next one is named.
	leafFirst := article(sentOf(p, map[string]bool{"a": true}), false, map[string]time.Duration{"": 0})
	assert.Equal(t, ev[1], leafFirst[0].Truth, "b, off the root span, over a, earlier on it")

	perProcess := article(o, true, map[string]time.Duration{"a": 0, "b": 0, "c": 0, "d": 0, "e": 0, "f": 0})
	assert.Len(t, perProcess, 6, "one report per service and trace: a, b, c; d (its repeat folded in), e; f")

	// An event with no trace id is sent as it is, at once.
	p.Events[6].Traced = false
	o = sentOf(p, nil)
	reports = article(o, false, map[string]time.Duration{"": 0})
	for _, r := range reports {
		if r.Truth == p.Events[6] {
			assert.Equal(t, Report{Truth: p.Events[6], Issue: "f *f.Internal", At: 3 * time.Second}, r)
		}
	}
}
