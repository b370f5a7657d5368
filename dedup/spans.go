package dedup

import (
	"encoding/hex"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/tracedup/tracedup/rootcause"
)

// A SpanSource knows a trace's spans beyond what each error event carries:
// where the events come from services the Transport does not run in (a
// relay that sees their transactions, a replay), the span tree arrives
// apart from the errors, often after them. The Transport asks it when it
// decides a trace, and links errors by what it answers under the same rule
// as by what the events carry ([rootcause.Rule]). In one process,
// sentryotel's span processor stamps the same on each event, and no
// SpanSource is needed.
type SpanSource interface {
	// Enclosing returns what is known of span in trace id as an error was
	// captured on it at at, and false when span is not known. It is called
	// from the Transport's decider goroutine, never under its locks, and
	// must be safe for concurrent use with whatever feeds it.
	Enclosing(id trace.TraceID, span trace.SpanID, at time.Time) (SpanLinks, bool)
}

// SpanLinks is what a SpanSource knows of one span.
type SpanLinks struct {
	// Ancestors are the ids of the spans known to enclose the span, nearest
	// first from its parent, across services: a callee's server span is
	// enclosed by the caller's client span.
	Ancestors []trace.SpanID
	// LastChild is the child of the span that started last before the
	// error was captured, the zero SpanID when none had; LastChildKnown
	// says whether the source knows the span's children at all (a span
	// that went on to start other work after a failed call had carried on
	// past the failure: see rootcause.Split).
	LastChild      trace.SpanID
	LastChildKnown bool
	// Ended says that the span itself had ended when the error was
	// captured (a background goroutine captured on it after its request):
	// its work was over, and what its children did explains nothing
	// captured then (rootcause.SpanEnded).
	Ended bool
}

// WithSpanSource sets where the Transport learns span links that the events
// do not carry (see [SpanSource]). A nil source is ignored.
func WithSpanSource(s SpanSource) Option {
	return optionFunc(func(c *config) {
		if s != nil {
			c.spans = s
		}
	})
}

// TraceComplete tells the Transport that the spans enclosing trace id's
// errors have arrived, as the end of the last call of a trace served in
// this process does (see [Incoming.End]): the trace is decided a grace
// (WithRequestGrace) later rather than when its window ends. A relay calls
// it when the transactions of a trace's errors have arrived.
func (t *Transport) TraceComplete(id trace.TraceID) {
	if t.windows.Load() == 0 {
		return
	}
	s := t.shardFor(id)
	s.mu.Lock()
	t.requestEnded(s, id)
	s.mu.Unlock()
}

// enrich completes the span links of errs from the SpanSource, where it
// knows more than an error carries: more ancestors, and the last child
// where the error carries none. It runs on the decider's goroutine.
func (t *Transport) enrich(id trace.TraceID, errs []rootcause.Error) {
	if t.cfg.spans == nil {
		return
	}
	for i := range errs {
		e := &errs[i]
		var span trace.SpanID
		if b, err := hex.DecodeString(e.SpanID); err != nil || len(b) != len(span) {
			continue
		} else {
			copy(span[:], b)
		}
		links, ok := t.cfg.spans.Enclosing(id, span, e.Timestamp)
		if !ok {
			continue
		}
		if len(links.Ancestors) > len(e.Ancestors) {
			e.Ancestors = make([]string, len(links.Ancestors))
			for k, a := range links.Ancestors {
				e.Ancestors[k] = a.String()
			}
			if e.ParentSpanID == "" {
				e.ParentSpanID = e.Ancestors[0]
			}
		}
		switch {
		case e.LastChild != "":
		case links.Ended:
			e.LastChild = rootcause.SpanEnded
		case links.LastChildKnown:
			e.LastChild = rootcause.NoChild
			if links.LastChild.IsValid() {
				e.LastChild = links.LastChild.String()
			}
		}
	}
}
