package rootcause

import (
	"strconv"
	"strings"
	"time"

	"github.com/getsentry/sentry-go"

	"github.com/tracedup/tracedup/internal/keys"
)

// Error is what a strategy sees of one captured event in a trace.
type Error struct {
	// Event is the captured event. It may be nil when the Error was built
	// from something other than a live event, such as the Sentry web API.
	Event *sentry.Event
	// EventID is the Sentry event id.
	EventID string
	// TraceID is the OTel trace id, 32 lowercase hex digits.
	TraceID string
	// SpanID is the id of the span that was active when the error was captured.
	SpanID string
	// ParentSpanID is "" where the span has no parent (the trace's root span).
	ParentSpanID string
	// Ancestors are the ids of the spans that enclose SpanID in its process,
	// nearest first from ParentSpanID, as far as they are known: the chain
	// that sentryotel's SpanProcessor records. It is nil where only the
	// parent is known.
	Ancestors []string
	// LastChild is the id of the child of SpanID that started last before
	// the error was captured, NoChild when none had, SpanEnded when the span
	// itself had ended (a background goroutine captured on it after its
	// request), and "" where unknown (no SpanProcessor). A span whose last
	// child is not the one a failure came through had carried on past that
	// failure.
	LastChild string
	// Service is the service.name of the process that captured the error.
	Service string
	// ExceptionType is the type of the outermost exception, as Sentry shows
	// it in the issue title ("*main.PaymentDeclined").
	ExceptionType string
	// Message is the outermost exception's value, or the event's message.
	Message string
	// Timestamp is when the event was captured, by the capturing host's clock.
	Timestamp time.Time
	// Stands is how many other events this one already stands for: a
	// report that a deduplicator sent (its dedup.suppressed tag), seen
	// again by another (a relay). Zero for an event as captured.
	Stands int
}

// Values of Error.LastChild that name no span: the span is known to have
// started no child when the error was captured (NoChild), or to have ended
// itself (SpanEnded).
const (
	NoChild   = "0000000000000000"
	SpanEnded = keys.SpanEnded
)

// IsRootSpan reports whether the error was captured on the trace's root span.
func (e Error) IsRootSpan() bool { return e.ParentSpanID == "" }

// FromEvent builds the Error that strategies see from a captured event. It
// reads the trace and span ids from the tags that package sentryotel stamps
// (otel.trace_id, otel.span_id, service.name) and falls back to the event's
// trace context. TraceID is "" when the event carries no trace id at all.
func FromEvent(event *sentry.Event) Error {
	if event == nil {
		return Error{}
	}
	e := Error{
		Event:     event,
		EventID:   string(event.EventID),
		TraceID:   event.Tags[keys.TagTraceID],
		SpanID:    event.Tags[keys.TagSpanID],
		Service:   event.Tags[keys.TagServiceName],
		Timestamp: event.Timestamp,
		Message:   event.Message,
	}
	if tc := event.Contexts[keys.ContextTrace]; tc != nil {
		if e.TraceID == "" {
			e.TraceID = contextString(tc[keys.TraceIDKey])
		}
		ctxSpan := contextString(tc[keys.SpanIDKey])
		if e.SpanID == "" {
			e.SpanID = ctxSpan
		}
		// The parent belongs to the context's span: when that is another
		// span than the tagged one, it is not the tagged span's parent, and
		// taking it would invent a link between the two.
		if ctxSpan == "" || ctxSpan == e.SpanID {
			e.ParentSpanID = contextString(tc[keys.ParentSpanIDKey])
		}
	}
	if n, err := strconv.Atoi(event.Tags[keys.TagSuppressed]); err == nil && n > 0 {
		e.Stands = min(n, maxStands) // a foreign tag: no count overflows
	}
	if tc := event.Contexts[keys.ContextTracedup]; tc != nil {
		if a, _ := tc[keys.AncestorsKey].(string); a != "" {
			e.Ancestors = ancestors(a)
		}
		e.LastChild, _ = tc[keys.LastChildKey].(string)
	}
	if n := len(event.Exception); n > 0 {
		// Sentry orders exceptions innermost first: the last is the one the
		// issue title shows.
		outer := event.Exception[n-1]
		e.ExceptionType = outer.Type
		if outer.Value != "" {
			e.Message = outer.Value
		}
	}
	return e
}

// maxStands bounds Stands as read from an event's tag, which anyone's SDK
// can set: sums of it never overflow.
const maxStands = 1 << 30

// maxAncestors bounds the ancestors read from an event: sentryotel stamps at
// most 32 (ancestry.MaxDepth). An event from elsewhere may carry any number,
// and every decision and every acknowledgement would walk them all.
const maxAncestors = 32

// ancestors splits a comma-separated chain, keeping its nearest
// maxAncestors ids. When it drops some, the ids it keeps are copied, so that
// what remembers them does not keep the whole string alive.
func ancestors(a string) []string {
	ids := strings.SplitN(a, ",", maxAncestors+1)
	if len(ids) <= maxAncestors {
		return ids
	}
	ids = ids[:maxAncestors]
	for i := range ids {
		ids[i] = strings.Clone(ids[i])
	}
	return ids
}

// contextString reads an id from a context map. Only strings count: they are
// what an OTel trace resolver or sentryotel writes, and what any event holds
// after a JSON round trip. sentry-go's own propagation context stores typed
// ids of a trace of its own, one per scope, which would group unrelated
// errors; they are ignored. The zero id counts as absent.
func contextString(v any) string {
	s, _ := v.(string)
	if strings.Trim(s, "0") == "" {
		return ""
	}
	return s
}
