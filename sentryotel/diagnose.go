package sentryotel

import (
	"errors"
	"sync"

	"github.com/getsentry/sentry-go"
	"go.opentelemetry.io/otel"
)

// Diagnoses the hook reports once per process, through otel.Handle and
// sentry-go's debug logger (sentry.DebugLogger, written when the client's
// Debug option is on): silent misconfigurations that leave error events
// without their trace, and so outside deduplication.
var (
	// ErrNoContext: an error event was captured with no context to find
	// its span in.
	ErrNoContext = errors.New("sentryotel: an error event was captured without a context, so it carries no trace and is not deduplicated; " +
		"pass the request's context: sentryotel.CaptureException(ctx, err), hub.RecoverWithContext(ctx, r), slog.ErrorContext(ctx, ...), " +
		"logrus's WithContext(ctx); with gin, c (the *gin.Context) or c.Request.Context(); with echo, c.Request().Context()")
	// ErrNoSpan: an error event's context held no span.
	ErrNoSpan = errors.New("sentryotel: an error event's context holds no span, so it carries no trace and is not deduplicated; " +
		"capture inside the request's span (in the handler otelhttp, otelgin or otelgrpc wraps, or a span you start), " +
		"and check that OpenTelemetry has a tracer provider (otel.SetTracerProvider or the middleware's WithTracerProvider)")
	// ErrNoPropagator: OpenTelemetry's global propagator propagates nothing.
	ErrNoPropagator = errors.New("sentryotel: OpenTelemetry's global propagator propagates nothing, so otelhttp and otelgrpc start a new trace " +
		"in every service and a cascade's errors do not share one; call otel.SetTextMapPropagator(propagation.TraceContext{}) " +
		"(or pass WithPropagators to each middleware)")
)

var diagnosed struct {
	noContext, noSpan, noPropagator sync.Once
}

// report hands err to otel.Handle and sentry-go's debug logger, once per
// process for each once.
func report(once *sync.Once, err error) {
	once.Do(func() {
		otel.Handle(err)
		sentry.DebugLogger.Println(err)
	})
}

// diagnoseMissing reports why an error event found no span.
func diagnoseMissing(event *sentry.Event, hint *sentry.EventHint) {
	if !isErrorEvent(event) {
		return
	}
	if hint == nil || hint.Context == nil && hint.Request == nil {
		report(&diagnosed.noContext, ErrNoContext)
		return
	}
	report(&diagnosed.noSpan, ErrNoSpan)
}

// diagnosePropagator reports a global propagator that propagates nothing,
// the first time an error event is stamped: every service then stamps a
// trace of its own.
func diagnosePropagator() {
	if len(otel.GetTextMapPropagator().Fields()) == 0 {
		report(&diagnosed.noPropagator, ErrNoPropagator)
	}
}

// isErrorEvent reports whether event is one the deduplicator takes part in:
// an exception, or level error or fatal.
func isErrorEvent(event *sentry.Event) bool {
	return event.Type == "" && (len(event.Exception) > 0 || event.Level == sentry.LevelError || event.Level == sentry.LevelFatal)
}
