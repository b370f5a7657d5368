package sentryotel

import (
	"context"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/tracedup/tracedup/internal/ancestry"
)

// SpanProcessor records the parent of every span while it is live, and which
// of its children started last, so that the hook can stamp on an error event
// the whole chain of spans it was captured in, up to the local root, and what
// its span did last; package dedup then knows which errors enclose which, and
// whether the span had carried on past a failure inside it. Register it on each TracerProvider of the process:
//
//	sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sentryotel.NewSpanProcessor()), ...)
//
// Without it a span knows only its parent, and two errors are linked only
// through spans on which errors were captured: a span in between without an
// error (a client span, an internal step) leaves them unlinked, and the
// deduplicator then sends both rather than guess.
//
// It exports nothing and holds one small entry per live span, at most
// MaxSpans at once across the process; a span past that is not recorded and
// its descendants' chains stop at it. Spans that are not recorded by their
// provider (sampled out) never reach a processor. All processors feed one
// process-wide table, since span ids are unique across providers.
type SpanProcessor struct{}

var _ sdktrace.SpanProcessor = (*SpanProcessor)(nil)

// MaxSpans bounds the live spans that all SpanProcessors of the process
// record at once.
const MaxSpans = ancestry.MaxSpans

// NewSpanProcessor returns a SpanProcessor and turns on ancestry stamping.
func NewSpanProcessor() *SpanProcessor {
	ancestry.Enable()
	return &SpanProcessor{}
}

// OnStart records s and its parent, and notes on the parent that s is its
// child that started last.
func (*SpanProcessor) OnStart(_ context.Context, s sdktrace.ReadWriteSpan) {
	ancestry.Record(s.SpanContext().SpanID(), s.Parent().SpanID())
}

// OnEnd forgets s.
func (*SpanProcessor) OnEnd(s sdktrace.ReadOnlySpan) {
	ancestry.End(s.SpanContext().SpanID())
}

// Shutdown does nothing: the table holds only live spans.
func (*SpanProcessor) Shutdown(context.Context) error { return nil }

// ForceFlush does nothing: there is nothing to export.
func (*SpanProcessor) ForceFlush(context.Context) error { return nil }
