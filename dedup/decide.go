package dedup

import (
	"slices"
	"strconv"
	"time"

	"github.com/getsentry/sentry-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracedup/tracedup/rootcause"
)

// decide splits w's errors into incidents and sends the root cause of each,
// annotated with what it stands for, suppressing the rest. If the strategy
// fails, it sends every event with its body. It runs on the decider's
// goroutine, after take removed w from s.
func (t *Transport) decide(s *shard, w *window) {
	t.enrich(w.id, w.errs)
	incidents, err := rootcause.Incidents(t.cfg.strategy, w.errs)
	if err != nil {
		otel.Handle(err)
		// Every error with its body is sent; those without follow from or
		// repeat one of them, and are suppressed.
		var out outbox
		for i := range w.errs {
			if w.errs[i].Event != nil {
				out.add(w.errs[i].Event, w.sizes[i])
			}
		}
		suppressed := uint64(len(w.errs) - len(out.events))
		s.mu.Lock()
		s.n.strategyFailures++
		s.n.pending -= suppressed
		s.n.suppressed += suppressed
		s.decided.put(w.id, time.Now(), decision{failed: true})
		s.mu.Unlock()
		t.emit.pushWait(s, out, w.acked)
		return
	}
	var out outbox
	sent := make(map[int]bool, len(incidents))
	var d decision
	for _, inc := range incidents {
		// A root the strategy named without its body (it follows from or
		// repeats another error) is reported by that error.
		root := inc.Root
		for w.errs[root].Event == nil {
			root = int(w.followed[root])
		}
		if sent[root] {
			continue // that error's report stands for this incident too
		}
		sent[root] = true
		if len(inc.Members) > 1 {
			t.annotate(w.errs[root].Event, w.errs, rootcause.Incident{Root: root, Members: inc.Members}, len(incidents))
		}
		out.add(w.errs[root].Event, w.sizes[root])
		d = d.remember(w.errs[root], true)
	}
	for i := range w.errs {
		if !sent[i] {
			d = d.remember(w.errs[i], false)
		}
	}
	suppressed := uint64(len(w.errs) - len(out.events))
	s.mu.Lock()
	s.n.pending -= suppressed
	s.n.suppressed += suppressed
	s.decided.put(w.id, time.Now(), d)
	s.mu.Unlock()
	t.emit.pushWait(s, out, w.acked)
}

// outbox is what one decision sends, with each event's estimated bytes.
type outbox struct {
	events []*sentry.Event
	sizes  []int64
}

func (o *outbox) add(ev *sentry.Event, size int64) {
	o.events = append(o.events, ev)
	o.sizes = append(o.sizes, size)
}

// judgeLate judges late events of one trace, at most lateChunk of them, in
// one strategy call with what its decision remembers: a late event that
// joins the incident of an event the trace already sent is suppressed; of an
// incident rooted among the late events, the root is sent, standing for the
// rest; every other late event is sent. Each is then remembered with the
// trace's decision. It runs on the decider's goroutine.
func (t *Transport) judgeLate(s *shard, id trace.TraceID, late []rootcause.Error, sizes []int64, acked bool) {
	t.enrich(id, late)
	s.mu.Lock()
	d, ok := s.decided.get(id, time.Now())
	s.mu.Unlock()
	sent := make([]bool, len(late))
	for i := range sent {
		sent[i] = true // when in doubt, send
	}
	if ok && !d.failed {
		t.explainLate(s, d, late, sent)
	}
	var out outbox
	for i := range late {
		if sent[i] {
			out.add(late[i].Event, sizes[i])
		}
	}
	suppressed := uint64(len(late) - len(out.events))
	now := time.Now()
	s.mu.Lock()
	s.n.pending -= suppressed
	s.n.suppressed += suppressed
	s.n.lateSuppressed += suppressed
	if d, ok := s.decided.get(id, now); ok && !d.failed {
		// The sent ones first: they are what suppresses later events.
		for _, want := range []bool{true, false} {
			for i := range late {
				if sent[i] == want {
					d = d.remember(late[i], want)
				}
			}
		}
		s.decided.put(id, now, d)
	}
	s.mu.Unlock()
	t.emit.pushWait(s, out, acked)
}

// explainLate splits d's remembered errors and late into incidents and
// clears sent[i] for each late error that is suppressed: a member, not the
// root, of an incident whose root d sent or that is itself late (that root
// is sent, annotated with its late members), and a late root that repeats
// an error d sent (the same origin: a repeat that arrived late may carry an
// earlier timestamp than the one sent). A late root that nothing d sent
// repeats (a deeper cause that arrived late) is sent. A late member of an
// incident rooted in an error d remembers but did not send stays sent, as
// does every late error when the strategy fails, which is counted.
func (t *Transport) explainLate(s *shard, d decision, late []rootcause.Error, sent []bool) {
	known := len(d.errs)
	errs := append(slices.Clip(d.errs), late...)
	incidents, err := rootcause.Incidents(t.cfg.strategy, errs)
	if err != nil {
		otel.Handle(err)
		s.mu.Lock()
		s.n.strategyFailures++
		s.mu.Unlock()
		return
	}
	for _, inc := range incidents {
		// Members are ascending: the late ones come after the remembered.
		first, _ := slices.BinarySearch(inc.Members, known)
		lateMembers := inc.Members[first:]
		reported := inc.Root >= known && slices.ContainsFunc(inc.Members[:first], func(i int) bool {
			return d.sent[i] && rootcause.Repeats(&errs[inc.Root], &errs[i])
		})
		if inc.Root < known && !d.sent[inc.Root] {
			continue // rooted in an error d did not send: when in doubt, send
		}
		for _, i := range lateMembers {
			if reported || i != inc.Root {
				sent[i-known] = false
			}
		}
		if inc.Root >= known && !reported && len(lateMembers) > 1 {
			t.annotate(errs[inc.Root].Event, errs, rootcause.Incident{Root: inc.Root, Members: lateMembers}, len(incidents))
		}
	}
}

// annotate writes on an incident's root cause what it stands for.
func (t *Transport) annotate(root *sentry.Event, errs []rootcause.Error, inc rootcause.Incident, incidents int) {
	// A member that is itself a report (a relay sees services that run a
	// deduplicator) stands for its own: counted, not counted twice.
	n := errs[inc.Root].Stands
	for _, i := range inc.Members {
		if i != inc.Root {
			n += 1 + errs[i].Stands
		}
	}
	listed := make([]map[string]string, 0, min(len(inc.Members)-1, t.cfg.maxListed))
	for _, i := range inc.Members {
		if i == inc.Root {
			continue
		}
		if len(listed) == t.cfg.maxListed {
			break
		}
		e := &errs[i]
		listed = append(listed, map[string]string{
			"event_id":       e.EventID,
			"service":        e.Service,
			"exception_type": e.ExceptionType,
			"message":        e.Message,
			"span_id":        e.SpanID,
		})
	}
	if root.Tags == nil {
		root.Tags = make(map[string]string, 1)
	}
	root.Tags[TagSuppressed] = strconv.Itoa(n)
	if root.Contexts == nil {
		root.Contexts = make(map[string]sentry.Context, 1)
	}
	root.Contexts[ContextKey] = sentry.Context{
		"suppressed": n,
		"events":     listed,
		"trace_id":   errs[inc.Root].TraceID,
		"strategy":   t.strategyName,
		"incidents":  incidents,
	}
}
