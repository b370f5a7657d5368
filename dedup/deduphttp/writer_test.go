package deduphttp_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/dedup/deduphttp"
	"github.com/tracedup/tracedup/internal/sentrytest"
	"github.com/tracedup/tracedup/sentryotel"
)

const eventID = "0af7651916cd43dd8448eb211c80319c"

// report sends an error event of the request in ctx to tr, as a capture in
// the handler would.
func report(ctx context.Context, tr *dedup.Transport) {
	sc := trace.SpanContextFromContext(ctx)
	ev := sentry.NewEvent()
	ev.EventID = eventID
	ev.Level = sentry.LevelError
	ev.Timestamp = time.Now()
	ev.Exception = []sentry.Exception{{Type: "*errors.errorString", Value: "card declined"}}
	ev.Tags[sentryotel.TagTraceID] = sc.TraceID().String()
	ev.Tags[sentryotel.TagSpanID] = sc.SpanID().String()
	tr.SendEvent(ev)
}

// announced returns req with the announcement of a new call of a caller in
// tr's fleet, and the call, which reads the answer: the event id the caller
// honours.
func announced(tr *dedup.Transport, req *http.Request) (*http.Request, dedup.Call) {
	call := tr.Call()
	req.Header.Set(deduphttp.HeaderCaller, call.Announcement())
	return req, call
}

// serve runs h behind NewHandler inside otelhttp on a real server and
// returns the response to one request of a caller of the server's fleet,
// with its HeaderReported replaced by what the caller honours: the event id,
// verified.
func serve(t *testing.T, h http.HandlerFunc) (*http.Response, string) {
	t.Helper()
	tr := dedup.NewTransport(sentrytest.NewTransport())
	t.Cleanup(tr.Close)
	tp := sentrytest.TracerProvider("payment")
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	srv := httptest.NewServer(otelhttp.NewHandler(deduphttp.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h(w, r.WithContext(context.WithValue(r.Context(), transportKey{}, tr)))
	}), tr), "payment", otelhttp.WithTracerProvider(tp)))
	t.Cleanup(srv.Close)
	req, call := announced(tr, httptest.NewRequest(http.MethodGet, srv.URL, nil))
	req.RequestURI = ""
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	if v := resp.Header.Get(deduphttp.HeaderReported); v != "" {
		resp.Header.Set(deduphttp.HeaderReported, call.Reported(v))
	}
	return resp, string(body)
}

type transportKey struct{}

func reportIn(r *http.Request) {
	report(r.Context(), r.Context().Value(transportKey{}).(*dedup.Transport))
}

func TestHandlerThatWritesNothingIsAcknowledged(t *testing.T) {
	resp, _ := serve(t, func(_ http.ResponseWriter, r *http.Request) { reportIn(r) })
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, eventID, resp.Header.Get(deduphttp.HeaderReported))
}

func TestEarlyHintsLeaveTheAcknowledgement(t *testing.T) {
	resp, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		reportIn(r)
		w.WriteHeader(http.StatusPaymentRequired)
	})
	assert.Equal(t, http.StatusPaymentRequired, resp.StatusCode)
	assert.Equal(t, eventID, resp.Header.Get(deduphttp.HeaderReported), "set on the final header")
}

func TestWriterKeepsHijackerAndReaderFrom(t *testing.T) {
	resp, body := serve(t, func(w http.ResponseWriter, r *http.Request) {
		_, hijacker := w.(http.Hijacker)
		_, flusher := w.(http.Flusher)
		rf, readerFrom := w.(io.ReaderFrom)
		if !hijacker || !flusher || !readerFrom {
			http.Error(w, "lost an interface", http.StatusInternalServerError)
			return
		}
		reportIn(r)
		_, _ = rf.ReadFrom(strings.NewReader("copied"))
	})
	assert.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", body)
	assert.Equal(t, "copied", body)
	assert.Equal(t, eventID, resp.Header.Get(deduphttp.HeaderReported), "set by ReadFrom")

	_, body = serve(t, func(w http.ResponseWriter, r *http.Request) {
		conn, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = rw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
		_ = rw.Flush()
	})
	assert.Equal(t, "hijacked", body)
}

// plainWriter is a ResponseWriter with none of the optional interfaces.
type plainWriter struct{ header http.Header }

func (p *plainWriter) Header() http.Header         { return p.header }
func (p *plainWriter) Write(b []byte) (int, error) { return len(b), nil }
func (p *plainWriter) WriteHeader(int)             {}

// hijackWriter can hijack but cannot flush.
type hijackWriter struct{ plainWriter }

func (hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) { return nil, nil, errors.New("no") }

func TestWriterHasOnlyTheInterfacesItWraps(t *testing.T) {
	tr := dedup.NewTransport(sentrytest.NewTransport())
	defer tr.Close()
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	for name, w := range map[string]http.ResponseWriter{
		"plain":    &plainWriter{header: http.Header{}},
		"hijacker": &hijackWriter{plainWriter{header: http.Header{}}},
	} {
		t.Run(name, func(t *testing.T) {
			_, wantHijacker := w.(http.Hijacker)
			var flushErr error
			var flusher, hijacker, readerFrom bool
			deduphttp.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, flusher = w.(http.Flusher)
				_, hijacker = w.(http.Hijacker)
				_, readerFrom = w.(io.ReaderFrom)
				flushErr = http.NewResponseController(w).Flush()
			}), tr).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx))
			assert.False(t, flusher, "http.Flusher")
			assert.False(t, readerFrom, "io.ReaderFrom")
			assert.Equal(t, wantHijacker, hijacker, "http.Hijacker")
			assert.ErrorIs(t, flushErr, http.ErrNotSupported, "ResponseController.Flush")
		})
	}
}

func TestPooledWritersDoNotLeak(t *testing.T) {
	tr := dedup.NewTransport(sentrytest.NewTransport())
	defer tr.Close()
	h := deduphttp.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			report(r.Context(), tr)
		}
		_, _ = w.Write([]byte("ok"))
	}), tr)
	for i, path := range []string{"/fail", "/ok", "/fail", "/ok", "/ok"} {
		sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{byte(i + 1)}, SpanID: trace.SpanID{2}})
		rec := httptest.NewRecorder()
		req, call := announced(tr, httptest.NewRequest(http.MethodGet, path, nil).WithContext(trace.ContextWithSpanContext(context.Background(), sc)))
		h.ServeHTTP(rec, req)
		want := ""
		if path == "/fail" {
			want = eventID
		}
		assert.Equal(t, want, call.Reported(rec.Header().Get(deduphttp.HeaderReported)), "request %d %s", i, path)
		assert.Equal(t, "ok", rec.Body.String())
	}
}
