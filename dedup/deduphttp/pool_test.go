package deduphttp_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/dedup/deduphttp"
	"github.com/tracedup/tracedup/internal/sentrytest"
)

// sampledCtx has a sampled span context, as otelhttp would put there.
func sampledCtx() context.Context {
	return trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x0a, 0xf7, 1},
		SpanID:     trace.SpanID{0xb2},
		TraceFlags: trace.FlagsSampled,
	}))
}

// The writers (and the Incoming in each) are pooled: a request's
// acknowledgement must not reach another request, however requests
// interleave, and a handler that panics must leave the pool sound.
func TestPooledWritersCarryNothingOver(t *testing.T) {
	tr := dedup.NewTransport(sentrytest.NewTransport())
	t.Cleanup(tr.Close)
	tp := sentrytest.TracerProvider("payment")
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	h := otelhttp.NewHandler(deduphttp.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("do") {
		case "fail":
			report(r.Context(), tr)
			w.WriteHeader(http.StatusPaymentRequired)
		case "panic":
			panic(http.ErrAbortHandler)
		default:
			_, _ = w.Write([]byte("ok"))
		}
	}), tr), "payment", otelhttp.WithTracerProvider(tp))

	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				do := [...]string{"ok", "fail", "ok", "panic"}[(g+i)%4]
				req, call := announced(tr, httptest.NewRequest(http.MethodGet, "/charge?do="+do+"&i="+strconv.Itoa(i), nil))
				rec := httptest.NewRecorder()
				func() {
					defer func() { _ = recover() }()
					h.ServeHTTP(rec, req)
				}()
				switch do {
				case "fail":
					assert.Equal(t, eventID, call.Reported(rec.Header().Get(deduphttp.HeaderReported)), "a failed request is acknowledged")
				default:
					assert.Empty(t, rec.Header().Get(deduphttp.HeaderReported), "%s request %d: acknowledged with another's id", do, i)
				}
			}
		})
	}
	wg.Wait()
}

// A pooled writer remembers the type of the writer it wrapped last: one of
// another type must still get a view with exactly its own interfaces.
func TestPooledWriterFollowsTheWrappedType(t *testing.T) {
	tr := dedup.NewTransport(sentrytest.NewTransport())
	t.Cleanup(tr.Close)
	var hijacker, flusher bool
	h := deduphttp.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, hijacker = w.(http.Hijacker)
		_, flusher = w.(http.Flusher)
	}), tr)
	req := httptest.NewRequest(http.MethodGet, "/", nil).WithContext(sampledCtx())
	for i := range 12 {
		var w http.ResponseWriter
		switch i % 3 {
		case 0:
			w = &plainWriter{header: http.Header{}}
		case 1:
			w = &hijackWriter{plainWriter{header: http.Header{}}}
		default:
			w = httptest.NewRecorder()
		}
		_, wantHijacker := w.(http.Hijacker)
		_, wantFlusher := w.(http.Flusher)
		h.ServeHTTP(w, req)
		assert.Equal(t, wantHijacker, hijacker, "request %d, %T: http.Hijacker", i, w)
		assert.Equal(t, wantFlusher, flusher, "request %d, %T: http.Flusher", i, w)
	}
}
