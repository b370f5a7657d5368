package sentryotel_test

import (
	"errors"
	"testing"

	"github.com/getsentry/sentry-go"
	sentrygootel "github.com/getsentry/sentry-go/otel"

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
			hook := sentryotel.BeforeSend(nil, bm.options...)
			hint := &sentry.EventHint{Context: ctx}
			events := make([]*sentry.Event, 1024)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i%len(events) == 0 {
					b.StopTimer()
					for j := range events {
						events[j] = sentry.NewEvent()
						events[j].Contexts["trace"] = sentry.NewPropagationContext().Map()
					}
					b.StartTimer()
				}
				hook(events[i%len(events)], hint)
			}
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
