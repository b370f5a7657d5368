package deduphttp_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/getsentry/sentry-go"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/dedup/deduphttp"
	"github.com/tracedup/tracedup/internal/sentrytest"
	"github.com/tracedup/tracedup/sentryotel"
)

// Each service wraps its handlers with NewHandler, inside otelhttp, and
// calls the services it depends on through NewTransport. A caller then knows
// when its downstream already reported the error behind a failed call, and
// its own error that follows from that call is a cascade.
func ExampleNewHandler() {
	tp := sentrytest.TracerProvider("example")
	defer func() { _ = tp.Shutdown(context.Background()) }()
	w3c := otelhttp.WithPropagators(propagation.TraceContext{})

	// The payment service. Its handler's capture is stood in for by handing
	// the Transport an event of the request's trace, as sentry-go would.
	payment := dedup.NewTransport(sentrytest.NewTransport())
	defer payment.Close()
	mux := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev := errorEvent(r.Context(), "*main.PaymentDeclined")
		ev.EventID = "9f2c4a1be0d34c5f8a6b7c8d9e0f1a2b" // sentry-go's are 32 hex digits
		payment.SendEvent(ev)
		w.WriteHeader(http.StatusPaymentRequired)
	})
	srv := httptest.NewServer(otelhttp.NewHandler(deduphttp.NewHandler(mux, payment), "payment",
		otelhttp.WithTracerProvider(tp), w3c))
	defer srv.Close()

	// The order service calls payment.
	inner := sentrytest.NewTransport()
	order := dedup.NewTransport(inner)
	client := &http.Client{Transport: otelhttp.NewTransport(deduphttp.NewTransport(nil, order),
		otelhttp.WithTracerProvider(tp), w3c)}

	ctx, span := tp.Tracer("example").Start(context.Background(), "POST /orders")
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, nil)
	resp, err := client.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = resp.Body.Close()
	fmt.Println("payment reported its error:", resp.Header.Get(deduphttp.HeaderReported) != "")

	// Order's error on the span that made the call is a cascade of it:
	// suppressed, counted.
	order.SendEvent(errorEvent(ctx, "*main.ServiceCallFailed"))
	span.End()
	order.Close()
	fmt.Println("order's events sent:", len(inner.Events()))
	fmt.Println("order's cascades:", order.Stats().Cascades)
	// Output:
	// payment reported its error: true
	// order's events sent: 0
	// order's cascades: 1
}

// errorEvent stands in for an error captured in ctx and stamped by
// sentryotel's hook.
func errorEvent(ctx context.Context, exceptionType string) *sentry.Event {
	sc := trace.SpanContextFromContext(ctx)
	ev := sentry.NewEvent()
	ev.Level = sentry.LevelError
	ev.Exception = []sentry.Exception{{Type: exceptionType}}
	ev.Tags[sentryotel.TagTraceID] = sc.TraceID().String()
	ev.Tags[sentryotel.TagSpanID] = sc.SpanID().String()
	return ev
}
