package dedup_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/internal/sentrytest"
)

// Each service wraps its handlers with its Transport's Handler, inside
// otelhttp, and calls the services it depends on through its Transport's
// RoundTripper. A caller then knows when its downstream already reported the
// error of a trace, and its own error of that trace is a cascade.
func ExampleTransport_Handler() {
	tp := sentrytest.TracerProvider("example")
	defer func() { _ = tp.Shutdown(context.Background()) }()
	w3c := otelhttp.WithPropagators(propagation.TraceContext{})

	// The payment service. Its handler's capture is stood in for by handing
	// the Transport an event of the request's trace, as sentry-go would.
	payment := dedup.NewTransport(sentrytest.NewTransport())
	defer payment.Close()
	mux := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev := cascade(otelTraceID(r.Context()))[0]
		ev.EventID = "9f2c4a1be0d34c5f8a6b7c8d9e0f1a2b" // sentry-go's are 32 hex digits
		payment.SendEvent(ev)
		w.WriteHeader(http.StatusPaymentRequired)
	})
	srv := httptest.NewServer(otelhttp.NewHandler(payment.Handler(mux), "payment",
		otelhttp.WithTracerProvider(tp), w3c))
	defer srv.Close()

	// The order service calls payment.
	inner := sentrytest.NewTransport()
	order := dedup.NewTransport(inner)
	client := &http.Client{Transport: otelhttp.NewTransport(order.RoundTripper(nil),
		otelhttp.WithTracerProvider(tp), w3c)}

	ctx, span := tp.Tracer("example").Start(context.Background(), "POST /orders")
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, nil)
	resp, err := client.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = resp.Body.Close()
	fmt.Println("payment reported its error:", resp.Header.Get(dedup.HeaderReported) != "")

	// Order's own error of the same trace is a cascade: suppressed, counted.
	order.SendEvent(cascade(otelTraceID(ctx))[1])
	span.End()
	order.Close()
	fmt.Println("order's events sent:", len(inner.Events()))
	fmt.Println("order's cascades:", order.Stats().Cascades)
	// Output:
	// payment reported its error: true
	// order's events sent: 0
	// order's cascades: 1
}

// otelTraceID is the trace id of the span in ctx, as sentryotel stamps it.
func otelTraceID(ctx context.Context) string {
	return trace.SpanContextFromContext(ctx).TraceID().String()
}
