// Package keys holds the tag and context names that tracedup writes on Sentry
// events and reads back, so that every package agrees on them.
package keys

import "context"

const (
	// TagTraceID is the tag holding the OTel trace id, 32 lowercase hex digits.
	TagTraceID = "otel.trace_id"
	// TagSpanID is the tag holding the OTel span id, 16 lowercase hex digits.
	TagSpanID = "otel.span_id"
	// TagServiceName is the tag holding the span's resource service.name.
	TagServiceName = "service.name"

	// ContextTrace is the Sentry context that links an event to a trace.
	ContextTrace = "trace"
	// TraceIDKey, SpanIDKey and ParentSpanIDKey are keys of the trace context.
	TraceIDKey      = "trace_id"
	SpanIDKey       = "span_id"
	ParentSpanIDKey = "parent_span_id"

	// ContextTracedup is the context in which sentryotel writes what it knows
	// beyond the trace context; AncestorsKey holds the span ids enclosing the
	// event's span, nearest first from its parent, comma-separated;
	// LastChildKey the id of the span's child that started last before the
	// capture, sixteen zeros when none had, SpanEnded when the span itself
	// had ended.
	ContextTracedup = "tracedup"
	AncestorsKey    = "ancestors"
	LastChildKey    = "last_child"
	SpanEnded       = "ended"

	// TagSuppressed is the tag a deduplicator sets on a report: how many
	// events it stands for (dedup.TagSuppressed).
	TagSuppressed = "dedup.suppressed"

	// SentryTraceTag is the tag Sentry itself indexes the trace id under.
	SentryTraceTag = "trace"
)

// CallKey is the context key under which an adapter leaves a served call
// whose span starts inside the handler it wraps (a router's own OTel
// middleware): sentryotel's hook binds it, through Binder, to the span of
// the first error event captured in a context derived from the request's.
type CallKey struct{}

// Binder is what sentryotel's hook finds under CallKey: dedup's Incoming.
type Binder interface{ Bind(ctx context.Context) }
