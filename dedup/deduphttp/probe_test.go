package deduphttp_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"
	sentryhttp "github.com/getsentry/sentry-go/http"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/dedup/deduphttp"
	"github.com/tracedup/tracedup/internal/sentrytest"
	"github.com/tracedup/tracedup/sentryotel"
)

func spanCtx(i byte) context.Context {
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{i, 1}, SpanID: trace.SpanID{i, 2}})
	return trace.ContextWithSpanContext(context.Background(), sc)
}

// A handler that panics after capturing still ends its call: the trace's
// window is cut short to the grace (Stats.RequestEnded), which only
// Incoming.End does.
func TestProbePanickingHandlerEndsItsCall(t *testing.T) {
	tr := dedup.NewTransport(sentrytest.NewTransport())
	defer tr.Close()
	h := deduphttp.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		report(r.Context(), tr)
		_, _ = w.Write([]byte("partial"))
		panic(http.ErrAbortHandler)
	}), tr)
	assert.Panics(t, func() {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil).WithContext(spanCtx(1)))
	})
	assert.Equal(t, uint64(1), tr.Stats().RequestEnded, "Incoming.End ran")

	// The pool is not poisoned: the next request is served afresh.
	rec := httptest.NewRecorder()
	deduphttp.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok"))
	}), tr).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil).WithContext(spanCtx(2)))
	assert.Empty(t, rec.Header().Get(deduphttp.HeaderReported))
	assert.Equal(t, "ok", rec.Body.String())
}

// sentryhttp inside NewHandler recovers the panic and captures it: the
// caller is told. Outside it, the capture comes after the response: no
// acknowledgement, and nothing panics in our middleware.
func TestProbeSentryhttpRecoversPanics(t *testing.T) {
	for _, inside := range []bool{true, false} {
		tr := dedup.NewTransport(sentrytest.NewTransport())
		client, err := sentry.NewClient(sentryotel.WrapOptions(sentry.ClientOptions{Transport: tr}))
		require.NoError(t, err)
		panicking := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })
		sh := sentryhttp.New(sentryhttp.Options{Repanic: false})
		var h http.Handler
		if inside {
			h = deduphttp.NewHandler(sh.Handle(panicking), tr)
		} else {
			h = sh.Handle(deduphttp.NewHandler(panicking, tr))
		}
		hub := sentry.NewHub(client, sentry.NewScope())
		ctx := sentry.SetHubOnContext(spanCtx(3), hub)
		rec := httptest.NewRecorder()
		req, call := announced(tr, httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx))
		assert.NotPanics(t, func() { h.ServeHTTP(rec, req) })
		got := call.Reported(rec.Header().Get(deduphttp.HeaderReported))
		if inside {
			assert.Len(t, got, 32, "the panic's event is acknowledged")
		} else {
			assert.Empty(t, got)
		}
		assert.True(t, tr.Flush(time.Second))
		s := tr.Stats()
		assert.Equal(t, uint64(1), s.Received, "inside=%v: %+v", inside, s)
		client.Close()
		tr.Close()
	}
}

// http.ResponseController on the writer NewHandler hands the handler:
// Flush sets the header first; deadlines reach the real writer; Hijack
// works and leaves nothing for final to write.
func TestProbeResponseController(t *testing.T) {
	resp, body := serve(t, func(w http.ResponseWriter, r *http.Request) {
		reportIn(r)
		rc := http.NewResponseController(w)
		assert.NoError(t, rc.SetWriteDeadline(time.Now().Add(time.Minute)))
		assert.NoError(t, rc.SetReadDeadline(time.Now().Add(time.Minute)))
		assert.NoError(t, rc.Flush())
		_, _ = io.WriteString(w, "body")
	})
	assert.Equal(t, eventID, resp.Header.Get(deduphttp.HeaderReported))
	assert.Equal(t, "body", body)

	tr := dedup.NewTransport(sentrytest.NewTransport())
	defer tr.Close()
	tp := sentrytest.TracerProvider("payment")
	defer func() { _ = tp.Shutdown(context.Background()) }()
	srv := httptest.NewServer(otelhttp.NewHandler(deduphttp.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		report(r.Context(), tr)
		conn, rw, err := http.NewResponseController(w).Hijack()
		if !assert.NoError(t, err) {
			return
		}
		_, _ = rw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
		_ = rw.Flush()
		_ = conn.Close()
	}), tr), "payment", otelhttp.WithTracerProvider(tp)))
	defer srv.Close()
	req, _ := announced(tr, httptest.NewRequest(http.MethodGet, srv.URL, nil))
	req.RequestURI = ""
	r2, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(r2.Body)
	_ = r2.Body.Close()
	assert.Equal(t, "hi", string(b))
	assert.Empty(t, r2.Header.Get(deduphttp.HeaderReported), "a hijacked response is the handler's own")
}

var _ = errors.New
