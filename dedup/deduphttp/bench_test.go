package deduphttp_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/dedup/deduphttp"
	"github.com/tracedup/tracedup/internal/sentrytest"
)

// BenchmarkHandler is the middleware's cost on the success path: an
// otelhttp-instrumented handler with a real SDK tracer (every span
// sampled and recorded), into a ResponseRecorder, alone and with NewHandler
// inside it. Compare the two in one run:
//
//	go test -run '^$' -bench Handler -count 6 ./dedup/deduphttp | benchstat -col /mw -

func BenchmarkHandler(b *testing.B) {
	tr := dedup.NewTransport(sentrytest.Discard{})
	defer tr.Close()
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok"))
	})
	for _, bb := range []struct {
		name    string
		handler http.Handler
	}{
		{"mw=otelhttp", ok},
		{"mw=otelhttp+deduphttp", deduphttp.NewHandler(ok, tr)},
	} {
		b.Run(bb.name, func(b *testing.B) {
			tp := sentrytest.TracerProvider("payment")
			defer func() { _ = tp.Shutdown(context.Background()) }()
			h := otelhttp.NewHandler(bb.handler, "payment", otelhttp.WithTracerProvider(tp))
			req := httptest.NewRequest(http.MethodGet, "/charge", nil)
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(httptest.NewRecorder(), req)
			}
		})
	}
}

// BenchmarkRoundTripper is the client side's cost: a call through an
// otelhttp transport with a real SDK tracer to a base transport that
// answers at once, inside a sampled span, alone and with NewTransport
// inside it. Compare the two in one run:
//
//	go test -run '^$' -bench RoundTripper -count 6 ./dedup/deduphttp | benchstat -col /rt -
func BenchmarkRoundTripper(b *testing.B) {
	tr := dedup.NewTransport(sentrytest.Discard{})
	defer tr.Close()
	base := answering{&http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: http.NoBody}}
	for _, bb := range []struct {
		name string
		rt   http.RoundTripper
	}{
		{"rt=otelhttp", base},
		{"rt=otelhttp+deduphttp", deduphttp.NewTransport(base, tr)},
	} {
		b.Run(bb.name, func(b *testing.B) {
			tp := sentrytest.TracerProvider("order")
			defer func() { _ = tp.Shutdown(context.Background()) }()
			rt := otelhttp.NewTransport(bb.rt, otelhttp.WithTracerProvider(tp))
			ctx, span := tp.Tracer("bench").Start(context.Background(), "order")
			defer span.End()
			req := httptest.NewRequest(http.MethodPost, "http://payment.internal:8080/v1/charges", nil).WithContext(ctx)
			req.RequestURI = ""
			b.ReportAllocs()
			for b.Loop() {
				if _, err := rt.RoundTrip(req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// answering is a base transport that answers every request with resp.
type answering struct{ resp *http.Response }

func (a answering) RoundTrip(*http.Request) (*http.Response, error) { return a.resp, nil }
