package sentryotel_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/getsentry/sentry-go"

	"github.com/tracedup/tracedup/internal/sentrytest"
	"github.com/tracedup/tracedup/sentryotel"
)

// Wrap the options given to sentry.Init (or sentry.NewClient) and capture
// errors with the request's context.
func ExampleWrapOptions() {
	tp := sentrytest.TracerProvider("payment")
	defer func() { _ = tp.Shutdown(context.Background()) }()

	transport := sentrytest.NewTransport() // in real code: leave Transport unset
	client, _ := sentry.NewClient(sentryotel.WrapOptions(sentry.ClientOptions{
		Dsn:       "", // your DSN
		Transport: transport,
		BeforeSend: func(event *sentry.Event, _ *sentry.EventHint) *sentry.Event {
			// Your own hook still runs, after tracedup's, on the stamped event.
			event.Tags["team"] = "payments"
			return event
		},
	}))
	defer client.Close()
	hub := sentry.NewHub(client, sentry.NewScope())

	ctx, span := tp.Tracer("example").Start(context.Background(), "charge")
	ctx = sentry.SetHubOnContext(ctx, hub)
	sentryotel.CaptureException(ctx, errors.New("card declined"))
	span.End()

	event := transport.Events()[0]
	fmt.Println("trace id tagged:", event.Tags[sentryotel.TagTraceID] == span.SpanContext().TraceID().String())
	fmt.Println("span id tagged:", event.Tags[sentryotel.TagSpanID] == span.SpanContext().SpanID().String())
	fmt.Println("service:", event.Tags[sentryotel.TagServiceName])
	fmt.Println("team:", event.Tags["team"])
	fmt.Println("fingerprint:", event.Fingerprint[0], "+ trace id")
	// Output:
	// trace id tagged: true
	// span id tagged: true
	// service: payment
	// team: payments
	// fingerprint: {{ default }} + trace id
}

// With the deduplicator, keep Sentry's own grouping: only one event per trace
// is sent anyway, and a trace id in the fingerprint would open one issue per
// failing request.
func ExampleWithoutTraceFingerprint() {
	opts := sentryotel.WrapOptions(sentry.ClientOptions{}, sentryotel.WithoutTraceFingerprint())
	fmt.Println(opts.BeforeSend != nil)
	// Output: true
}
