// Command basic shows tracedup's hook on one service: an error captured
// inside an OpenTelemetry span reaches Sentry stamped with the span's trace
// id, span id, parent span id and service name.
//
//	go run ./examples/basic              # sends to an embedded fake Sentry, prints what it received
//	go run ./examples/basic -json        # the same, as the raw event JSON
//	go run ./examples/basic -dsn "$DSN"  # sends to your Sentry project instead
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/getsentry/sentry-go"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/tracedup/tracedup/internal/fakesentry"
	"github.com/tracedup/tracedup/sentryotel"
)

// timeout bounds the flush and the wait for the fake Sentry: a deadline for
// a broken setup, not a delay.
const timeout = 10 * time.Second

// DeclinedError is the error this demo fails with. An error type of its own
// names the exception in Sentry ("*main.DeclinedError").
type DeclinedError struct{ Order int }

func (e *DeclinedError) Error() string {
	return fmt.Sprintf("charge order %d: card declined", e.Order)
}

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole program, so that a test can run it; it returns the exit
// code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("basic", flag.ContinueOnError)
	flags.SetOutput(stderr)
	dsn := flags.String("dsn", "", "Sentry DSN to send to (default: an embedded fake Sentry on loopback)")
	asJSON := flags.Bool("json", false, "print the event as raw JSON")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintln(stderr, "basic:", err)
		return 1
	}

	// Without a DSN, send to a Sentry-protocol endpoint in this process, so
	// that nobody needs a Sentry account to see what is sent.
	var fake *fakesentry.Server
	if *dsn == "" {
		var err error
		if fake, err = fakesentry.New(); err != nil {
			return fail(err)
		}
		defer fake.Close()
		*dsn = fake.DSN()
	}

	// A real OpenTelemetry SDK tracer. The hook reads service.name from the
	// span's resource.
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(
		resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName("checkout"))))
	defer func() { _ = tp.Shutdown(context.Background()) }()

	// A real sentry-go client. WrapOptions installs tracedup's hook as
	// BeforeSend; a BeforeSend of your own still runs, after the hook, and
	// sees the stamped event. This one keeps the event as it was sent, to
	// print it when it went to a real Sentry that we cannot read back here.
	var sent *sentry.Event
	client, err := sentry.NewClient(sentryotel.WrapOptions(sentry.ClientOptions{
		Dsn: *dsn,
		BeforeSend: func(event *sentry.Event, _ *sentry.EventHint) *sentry.Event {
			sent = event
			return event
		},
	}))
	if err != nil {
		return fail(err)
	}
	defer client.Close()
	// The hub travels on ctx; sentryotel.CaptureException finds it there.
	ctx = sentry.SetHubOnContext(ctx, sentry.NewHub(client, sentry.NewScope()))

	// A request span and a child span; the error happens in the child.
	tracer := tp.Tracer("github.com/tracedup/tracedup/examples/basic")
	ctx, checkout := tracer.Start(ctx, "POST /checkout")
	chargeCtx, charge := tracer.Start(ctx, "charge card")
	// Capture with the context, so that the hook finds the active span.
	id := sentryotel.CaptureException(chargeCtx, &DeclinedError{Order: 1042})
	charge.End()
	checkout.End()
	if id == nil {
		return fail(errors.New("the event was not sent"))
	}

	// Events are sent in the background: flush before reading them back,
	// and before any program exits.
	if !client.Flush(timeout) {
		return fail(errors.New("timed out sending the event"))
	}

	// What Sentry received: read back from the fake Sentry, else the event
	// as it left the client.
	var raw []byte
	if fake != nil {
		waitCtx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		events, err := fake.WaitFor(waitCtx, 1)
		if err != nil {
			return fail(fmt.Errorf("waiting for the fake Sentry: %w", err))
		}
		raw = events[0].Raw
	} else if raw, err = json.Marshal(sent); err != nil {
		return fail(err)
	}

	if *asJSON {
		var out bytes.Buffer
		if err := json.Indent(&out, raw, "", "  "); err != nil {
			return fail(err)
		}
		fmt.Fprintln(stdout, out.String())
		return 0
	}
	var event sentry.Event
	if err := json.Unmarshal(raw, &event); err != nil {
		return fail(err)
	}
	where := "your Sentry (as sent)"
	if fake != nil {
		where = "the embedded fake Sentry (use -dsn to send to yours)"
	}
	fmt.Fprintf(stdout, "Spans:  trace %s\n", checkout.SpanContext().TraceID())
	fmt.Fprintf(stdout, "        %-16q span %s\n", "POST /checkout", checkout.SpanContext().SpanID())
	fmt.Fprintf(stdout, "        %-16q span %s  <- the error was captured here\n", "charge card", charge.SpanContext().SpanID())
	fmt.Fprintf(stdout, "\nEvent %s, as received by %s:\n", event.EventID, where)
	printEvent(stdout, &event)
	return 0
}

// printEvent prints the parts of event that tracedup writes: the tags,
// contexts.trace and the fingerprint.
func printEvent(w io.Writer, event *sentry.Event) {
	if n := len(event.Exception); n > 0 {
		// sentry-go lists a wrapped error's chain innermost first.
		e := event.Exception[n-1]
		fmt.Fprintf(w, "  exception       %s: %s\n", e.Type, e.Value)
	}
	fmt.Fprintln(w, "  tags")
	keys := make([]string, 0, len(event.Tags))
	for k := range event.Tags {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "    %-16s%s\n", k, event.Tags[k])
	}
	fmt.Fprintln(w, "  contexts.trace")
	for _, k := range []string{"trace_id", "span_id", "parent_span_id"} {
		if v, ok := event.Contexts["trace"][k]; ok {
			fmt.Fprintf(w, "    %-16s%v\n", k, v)
		}
	}
	if len(event.Fingerprint) == 0 {
		fmt.Fprintln(w, "  fingerprint     none: Sentry groups by its default")
		return
	}
	fp, _ := json.Marshal(event.Fingerprint)
	fmt.Fprintf(w, "  fingerprint     %s\n", fp)
}
