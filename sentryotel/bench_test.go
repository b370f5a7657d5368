package sentryotel_test

import (
	"context"
	"errors"
	"testing"

	"github.com/getsentry/sentry-go"
	sentrygootel "github.com/getsentry/sentry-go/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracedup/tracedup/internal/sentrytest"
	"github.com/tracedup/tracedup/sentryotel"
)

// BenchmarkBeforeSend measures the hook alone on a fresh event as it reaches
// BeforeSend in a capture: made by sentry.NewEvent, with the trace context
// that sentry-go's scope leaves (its own ids, typed). Events are built in
// batches with the timer stopped.
func BenchmarkBeforeSend(b *testing.B) {
	for _, bm := range []struct {
		name    string
		options []sentryotel.Option
	}{
		{"fingerprint", []sentryotel.Option{sentryotel.WithTraceFingerprint()}},
		{"no-fingerprint", nil},
	} {
		b.Run(bm.name, func(b *testing.B) {
			_, ctx, _, _ := spans(b, "payment")
			benchmarkHook(b, sentryotel.BeforeSend(nil, bm.options...), ctx, func() *sentry.Event {
				ev := sentry.NewEvent()
				ev.Contexts["trace"] = sentry.NewPropagationContext().Map()
				return ev
			})
		})
	}
}

// BenchmarkCaptureException captures an error inside a span, through a real
// client with a no-op transport: plain sentry-go, sentry-go with its own OTel
// linking (NewOtelIntegration), and with tracedup's hook.
func BenchmarkCaptureException(b *testing.B) {
	linking := func(in []sentry.Integration) []sentry.Integration {
		return append(in, sentrygootel.NewOtelIntegration())
	}
	for _, bm := range []struct {
		name string
		opts func() sentry.ClientOptions
	}{
		{"plain", func() sentry.ClientOptions { return sentry.ClientOptions{} }},
		{"sentry-go-otel-linking", func() sentry.ClientOptions {
			return sentry.ClientOptions{Integrations: linking}
		}},
		{"tracedup-BeforeSend", func() sentry.ClientOptions {
			return sentry.ClientOptions{BeforeSend: sentryotel.BeforeSend(nil)}
		}},
		{"tracedup-WrapOptions", func() sentry.ClientOptions {
			return sentryotel.WrapOptions(sentry.ClientOptions{})
		}},
	} {
		b.Run(bm.name, func(b *testing.B) {
			_, ctx, _, _ := spans(b, "payment")
			opts := bm.opts()
			opts.Transport = sentrytest.Discard{}
			client, err := sentry.NewClient(opts)
			if err != nil {
				b.Fatal(err)
			}
			defer client.Close()
			scope := sentry.NewScope()
			errPayment := errors.New("card declined")
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				client.CaptureException(errPayment, &sentry.EventHint{Context: ctx}, scope)
			}
		})
	}
}

// exporting stands in for the exporter's processor of a real provider: with
// no processor at all the SDK records nothing, which no real service does.
type exporting struct{}

func (exporting) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (exporting) OnEnd(sdktrace.ReadOnlySpan)                     {}
func (exporting) Shutdown(context.Context) error                  { return nil }
func (exporting) ForceFlush(context.Context) error                { return nil }

// withAndWithout are a recording provider's options without and with the
// SpanProcessor.
var withAndWithout = []struct {
	name string
	opts []sdktrace.TracerProviderOption
}{
	{"processor=without", []sdktrace.TracerProviderOption{sdktrace.WithSpanProcessor(exporting{})}},
	{"processor=with", []sdktrace.TracerProviderOption{sdktrace.WithSpanProcessor(exporting{}),
		sdktrace.WithSpanProcessor(sentryotel.NewSpanProcessor())}},
}

// BenchmarkSpan starts and ends a child span, as every request does for
// every span, on a provider without and with the SpanProcessor: the
// difference is what the ancestry costs a request that captures no error.
func BenchmarkSpan(b *testing.B) {
	for _, bm := range withAndWithout {
		b.Run(bm.name, func(b *testing.B) {
			tp := sdktrace.NewTracerProvider(bm.opts...)
			defer func() { _ = tp.Shutdown(context.Background()) }()
			tracer := tp.Tracer("bench")
			ctx, root := tracer.Start(context.Background(), "request")
			defer root.End()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				_, span := tracer.Start(ctx, "step")
				span.End()
			}
		})
	}
}

// BenchmarkBeforeSendAncestry is the hook on an error captured three spans
// below the request's span, without and with the SpanProcessor, which adds
// the chain of enclosing spans to the event.
func BenchmarkBeforeSendAncestry(b *testing.B) {
	for _, bm := range withAndWithout {
		b.Run(bm.name, func(b *testing.B) {
			tp := sdktrace.NewTracerProvider(bm.opts...)
			defer func() { _ = tp.Shutdown(context.Background()) }()
			tracer := tp.Tracer("bench")
			ctx := context.Background()
			for _, name := range []string{"request", "step", "query", "row"} {
				var span trace.Span
				ctx, span = tracer.Start(ctx, name)
				defer span.End()
			}
			benchmarkHook(b, sentryotel.BeforeSend(nil), ctx, sentry.NewEvent)
		})
	}
}

// benchmarkHook runs hook on fresh events captured in ctx, made by newEvent in
// batches with the timer stopped.
func benchmarkHook(b *testing.B, hook func(*sentry.Event, *sentry.EventHint) *sentry.Event, ctx context.Context, newEvent func() *sentry.Event) {
	hint := &sentry.EventHint{Context: ctx}
	events := make([]*sentry.Event, 1024)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%len(events) == 0 {
			b.StopTimer()
			for j := range events {
				events[j] = newEvent()
			}
			b.StartTimer()
		}
		hook(events[i%len(events)], hint)
	}
}
