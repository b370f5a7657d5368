package ingest

import (
	"errors"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/tracedup/tracedup/internal/envelope"
)

// Auth is how an SDK authenticated a request. It is forwarded upstream as it
// came.
type Auth struct {
	// Key is the DSN's public key.
	Key string
	// Header is the X-Sentry-Auth header as sent, "" if none.
	Header string
	// Query is the request's raw query when the key came in it
	// (sentry_key=...), "" otherwise.
	Query string
}

// Request is what the ingest stage knows of one accepted request.
type Request struct {
	// Project is the project id from the path.
	Project string
	Auth    Auth
	// EnvelopeHeader is the envelope's header line as sent (a JSON object:
	// event_id, dsn, sdk, sent_at, trace...); for the store endpoint, one
	// the ingest stage made.
	EnvelopeHeader []byte
	// UserAgent is the SDK's User-Agent header.
	UserAgent string
	// Received is when the request was accepted.
	Received time.Time
}

// Span is one span as the relay learns it, from whichever format carried it:
// a transaction (its root span from contexts.trace, and its spans), a span
// item, or an OTLP trace.
type Span struct {
	TraceID trace.TraceID
	SpanID  trace.SpanID
	// Parent is the span's parent, the zero SpanID for a trace's root. A
	// transaction's root span's parent is in another service (the caller's
	// client span) or none.
	Parent     trace.SpanID
	Start, End time.Time
	// Service is the service that recorded the span, where known (OTLP's
	// resource service.name, a transaction's release or server name...).
	Service string
	// Segment says the span is the root of a service's transaction (its
	// entry point).
	Segment bool
}

// ErrFull is what a Sink returns when it cannot take an event now: the
// ingest stage answers the SDK 429 with a Retry-After.
var ErrFull = errors.New("ingest: relay is full")

// Sink takes what the ingest stage accepts for deduplication.
type Sink interface {
	// Event takes one error event item: an "event" item of an envelope,
	// or the store endpoint's body. The item's payload is the event's
	// JSON as the SDK sent it. It returns ErrFull when the relay has no
	// room: nothing was taken.
	Event(req *Request, item envelope.Item) error
	// Spans tells the sink the spans of a transaction, span items or an
	// OTLP trace. The items themselves are forwarded upstream by the
	// ingest stage, at once: Spans only learns from them.
	Spans(req *Request, spans []Span)
}
