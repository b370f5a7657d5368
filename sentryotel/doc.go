// Package sentryotel stamps Sentry error events with the OpenTelemetry trace
// and span that were active when the error was captured.
//
// Install it by wrapping the options given to sentry.Init or
// sentry.NewClient:
//
//	err := sentry.Init(sentryotel.WrapOptions(sentry.ClientOptions{Dsn: dsn}))
//
// and capture errors with the request's context, so the hook can find the
// span:
//
//	sentryotel.CaptureException(ctx, err)
//
// A stamped event carries the tags otel.trace_id, otel.span_id and, where the
// span's resource names one, service.name; the trace context
// (contexts.trace) with trace_id, span_id and parent_span_id; with a
// [SpanProcessor] on the TracerProvider, the chain of spans enclosing the
// event's span (contexts.tracedup.ancestors); and, only with
// [WithTraceFingerprint], the trace id in its fingerprint after {{ default }}
// (or the event's own fingerprint), which splits Sentry's grouping by trace:
// one issue per error per failing request.
//
// The span is looked up in the hint's Context, then in the hint's Request,
// then in the request that sentryhttp put on the scope (this last path needs
// [WrapOptions], which installs a trace resolver on the client). That covers
// sentryotel.CaptureException, hub.CaptureException inside a handler wrapped
// by otelhttp and sentryhttp, and panics recovered by sentryhttp.
//
// sentry-go has a package of the same name, github.com/getsentry/sentry-go/otel,
// whose NewOtelIntegration links errors to traces by id. Both can be used
// together; import one of them under another name:
//
//	import (
//		sentrygootel "github.com/getsentry/sentry-go/otel"
//		"github.com/tracedup/tracedup/sentryotel"
//	)
package sentryotel
