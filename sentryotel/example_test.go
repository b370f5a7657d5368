package sentryotel_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/getsentry/sentry-go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

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
	fmt.Println("fingerprint:", event.Fingerprint)
	// Output:
	// trace id tagged: true
	// span id tagged: true
	// service: payment
	// team: payments
	// fingerprint: []
}

// Opt in to one Sentry issue per failing request: the trace id joins the
// fingerprint, after Sentry's own grouping.
func ExampleWithTraceFingerprint() {
	tp := sentrytest.TracerProvider("payment")
	defer func() { _ = tp.Shutdown(context.Background()) }()
	ctx, span := tp.Tracer("example").Start(context.Background(), "charge")
	defer span.End()

	hook := sentryotel.BeforeSend(nil, sentryotel.WithTraceFingerprint())
	event := hook(&sentry.Event{Level: sentry.LevelError}, &sentry.EventHint{Context: ctx})
	fmt.Println(event.Fingerprint[0], event.Fingerprint[1] == span.SpanContext().TraceID().String())
	// Output: {{ default }} true
}

// Register the span processor on the tracer provider, and an error event
// carries the chain of spans it was captured in, up to the local root: what
// package dedup needs to tell a symptom from an independent failure.
func ExampleNewSpanProcessor() {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sentryotel.NewSpanProcessor()))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	tracer := tp.Tracer("example")
	ctx, handler := tracer.Start(context.Background(), "POST /checkout")
	ctx, step := tracer.Start(ctx, "reserve stock")
	ctx, query := tracer.Start(ctx, "SELECT stock")

	hook := sentryotel.BeforeSend(nil)
	event := hook(&sentry.Event{Level: sentry.LevelError}, &sentry.EventHint{Context: ctx})
	query.End()
	step.End()
	handler.End()

	want := step.SpanContext().SpanID().String() + "," + handler.SpanContext().SpanID().String()
	fmt.Println(event.Contexts["tracedup"]["ancestors"] == want)
	// Output: true
}
