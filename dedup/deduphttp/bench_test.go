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
