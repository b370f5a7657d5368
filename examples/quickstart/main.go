// Command quickstart is the README's quick start, whole: two services,
// order and payment, each in a process of its own set up as the README says.
// Run with no argument it launches both (launch.go), sends order one
// checkout, which payment declines, and prints what Sentry received: one
// event, payment's, where there would be two. With SENTRY_DSN unset the
// services send to an embedded Sentry-protocol endpoint on loopback, so no
// account is needed; set it to send to your project.
//
//	go run ./examples/quickstart
//	SENTRY_DSN=https://...@....ingest.sentry.io/... go run ./examples/quickstart
package main

// What follows, to the end marker, is README.md's Quick start; a test keeps
// the two equal.

// quickstart:begin
import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/getsentry/sentry-go"
	sentryhttp "github.com/getsentry/sentry-go/http"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/dedup/deduphttp"
	"github.com/tracedup/tracedup/sentryotel"
)

func main() {
	name := os.Getenv("SERVICE_NAME") // "order" or "payment"
	if name == "" {
		os.Exit(launch()) // this demo only: runs both services (launch.go)
	}

	// OpenTelemetry as usual, with the W3C propagator (without it every
	// service starts a trace of its own), the service's name on its
	// resource, and one line for tracedup: the span processor, which gives
	// each error the chain of spans it was captured in.
	otel.SetTextMapPropagator(propagation.TraceContext{})
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName(name))),
		sdktrace.WithSpanProcessor(sentryotel.NewSpanProcessor()),
		// sdktrace.WithBatcher(exporter): your exporter, as before.
	)
	otel.SetTracerProvider(tp)
	defer func() { _ = tp.Shutdown(context.Background()) }()

	// The deduplicator wraps sentry-go's HTTP transport; the hook stamps
	// trace ids, and your own BeforeSend, if any, runs after it. Name the
	// type your handlers wrap a failed call in: only errors of that type
	// then count as cascades of a downstream failure.
	transport := dedup.NewTransport(sentry.NewHTTPTransport(), dedup.WithCascadeTypes("CallFailed"))
	err := sentry.Init(sentryotel.WrapOptions(sentry.ClientOptions{
		Dsn:        os.Getenv("SENTRY_DSN"),
		Transport:  transport,
		ServerName: name,
		EnableLogs: true, // the cascades a caller suppresses, as Sentry logs beside the root cause
	}))
	if err != nil {
		log.Fatal(err)
	}

	// Client side: calls to your own services learn what they reported.
	client := &http.Client{Transport: otelhttp.NewTransport(deduphttp.NewTransport(nil, transport))}

	mux := http.NewServeMux()
	mux.HandleFunc("POST /charge", charge)
	mux.HandleFunc("POST /checkout", func(w http.ResponseWriter, r *http.Request) { checkout(w, r, client) })

	// Server side: otelhttp outermost, then deduphttp, then sentryhttp, so
	// that a panic sentryhttp recovers is acknowledged too.
	sh := sentryhttp.New(sentryhttp.Options{})
	srv := &http.Server{
		Handler:           otelhttp.NewHandler(deduphttp.NewHandler(sh.Handle(mux), transport), name),
		ReadHeaderTimeout: 10 * time.Second,
	}
	serve(srv) // until the launcher stops it (launch.go); your srv.ListenAndServe()

	sentry.Flush(5 * time.Second) // sends what the deduplicator holds
	s := transport.Stats()
	fmt.Printf("%s: %d errors captured, %d sent, %d suppressed as cascades\n", name, s.Received, s.Emitted, s.Cascades)
}

// CardDeclined is payment's error.
type CardDeclined struct{}

func (*CardDeclined) Error() string { return "card declined" }

// CallFailed is what order's handler wraps a failed call in.
type CallFailed struct {
	Service string
	Err     error
}

func (e *CallFailed) Error() string { return e.Service + ": " + e.Err.Error() }

// charge is payment's handler: it declines every card.
func charge(w http.ResponseWriter, r *http.Request) {
	err := &CardDeclined{}
	sentryotel.CaptureException(r.Context(), err) // r.Context() carries the span
	http.Error(w, err.Error(), http.StatusPaymentRequired)
}

// checkout is order's handler: it charges the card through payment.
func checkout(w http.ResponseWriter, r *http.Request, client *http.Client) {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, os.Getenv("PAYMENT_URL")+"/charge", nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	resp, err := client.Do(req)
	if err == nil {
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			fmt.Fprintln(w, "ok")
			return
		}
		err = fmt.Errorf("answered %s", resp.Status)
	}
	err = &CallFailed{Service: "payment", Err: err}
	sentryotel.CaptureException(r.Context(), err)
	http.Error(w, err.Error(), http.StatusBadGateway)
}

// quickstart:end
