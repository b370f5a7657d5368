package deduphttp_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/dedup/deduphttp"
	"github.com/tracedup/tracedup/internal/sentrytest"
	"github.com/tracedup/tracedup/sentryotel"
)

// downstream is a service whose handler captures an error through a real
// sentry-go client into its own dedup.Transport, unless capture is false.
type downstream struct {
	srv       *httptest.Server
	transport *dedup.Transport
	inner     *sentrytest.Transport
}

func newDownstream(t *testing.T, capture func(r *http.Request) bool, writeFirst bool) *downstream {
	t.Helper()
	tp := sentrytest.TracerProvider("payment")
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	d := &downstream{inner: sentrytest.NewTransport()}
	d.transport = dedup.NewTransport(d.inner)
	client, err := sentry.NewClient(sentryotel.WrapOptions(sentry.ClientOptions{
		Transport: d.transport,
		// The event of a request with this header is sampled out.
		BeforeSend: func(ev *sentry.Event, hint *sentry.EventHint) *sentry.Event {
			if hint.Context != nil && hint.Context.Value(dropKey{}) != nil {
				return nil
			}
			return ev
		},
	}))
	require.NoError(t, err)
	t.Cleanup(client.Close)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if writeFirst {
			w.WriteHeader(http.StatusPaymentRequired)
		}
		ctx := r.Context()
		if r.Header.Get("X-Drop") != "" {
			ctx = context.WithValue(ctx, dropKey{}, true)
		}
		if capture(r) {
			hub := sentry.NewHub(client, sentry.NewScope())
			sentryotel.CaptureException(sentry.SetHubOnContext(ctx, hub), errors.New("card declined"))
		}
		if !writeFirst {
			w.WriteHeader(http.StatusPaymentRequired)
		}
	})
	d.srv = httptest.NewServer(otelhttp.NewHandler(deduphttp.NewHandler(h, d.transport), "payment",
		otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(propagation.TraceContext{})))
	t.Cleanup(d.srv.Close)
	return d
}

type dropKey struct{}

// call makes a request from a caller whose Transport is caller, inside a
// span of a fresh trace, and returns that span and the response header.
func call(t *testing.T, caller *dedup.Transport, url string, header http.Header) (trace.SpanContext, http.Header) {
	t.Helper()
	tp := sentrytest.TracerProvider("order")
	defer func() { _ = tp.Shutdown(context.Background()) }()
	ctx, span := tp.Tracer("test").Start(context.Background(), "order")
	defer span.End()
	client := &http.Client{Transport: otelhttp.NewTransport(deduphttp.NewTransport(nil, caller),
		otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(propagation.TraceContext{}))}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	return span.SpanContext(), resp.Header
}

// callerEvent is the caller's error, captured on the span that made the call.
func callerEvent(sc trace.SpanContext) *sentry.Event {
	ev := sentry.NewEvent()
	ev.EventID = "00000000000000000000000000000b2b"
	ev.Level = sentry.LevelError
	ev.Timestamp = time.Now()
	ev.Exception = []sentry.Exception{{Type: "*main.ServiceCallFailed", Value: "order failed"}}
	ev.Tags[sentryotel.TagTraceID] = sc.TraceID().String()
	ev.Tags[sentryotel.TagSpanID] = sc.SpanID().String()
	ev.Tags[sentryotel.TagServiceName] = "order"
	return ev
}

// answeredID returns the event id in the answer of header, unverified: the
// caller verified it already.
func answeredID(header http.Header) string {
	id, _, _ := strings.Cut(header.Get(deduphttp.HeaderReported), ";")
	return id
}

func assertInvariant(t *testing.T, s dedup.Stats) {
	t.Helper()
	assert.Equal(t, s.Received, s.Emitted+s.Suppressed+s.Pending,
		"Received == Emitted + Suppressed + Pending: %+v", s)
}

func TestCrossServiceCascadeIsSuppressed(t *testing.T) {
	down := newDownstream(t, func(*http.Request) bool { return true }, false)
	inner := sentrytest.NewTransport()
	caller := dedup.NewTransport(inner)
	defer caller.Close()
	defer down.transport.Close()

	sc, header := call(t, caller, down.srv.URL, nil)
	reported := answeredID(header)
	require.Len(t, reported, 32, "the downstream acknowledges its event")

	caller.SendEvent(callerEvent(sc))
	caller.Flush(5 * time.Second)
	assert.Empty(t, inner.Events(), "the caller's cascade is suppressed")
	s := caller.Stats()
	assertInvariant(t, s)
	assert.Equal(t, dedup.Stats{Received: 1, Suppressed: 1, Cascades: 1}, s)

	down.transport.Flush(5 * time.Second)
	got := down.inner.Events()
	require.Len(t, got, 1)
	assert.Equal(t, reported, string(got[0].EventID), "the id names the downstream event")
	assert.Equal(t, sc.TraceID().String(), got[0].Tags[sentryotel.TagTraceID])
}

func TestCrossServiceCascadeSentTagged(t *testing.T) {
	down := newDownstream(t, func(*http.Request) bool { return true }, false)
	inner := sentrytest.NewTransport()
	caller := dedup.NewTransport(inner, dedup.WithSendCascades())
	defer caller.Close()
	defer down.transport.Close()

	sc, header := call(t, caller, down.srv.URL, nil)
	ev := callerEvent(sc)
	caller.SendEvent(ev)
	require.True(t, caller.Flush(time.Second)) // SendEvent only queues it

	require.Equal(t, []*sentry.Event{ev}, inner.Events(), "sent without a window")
	assert.Equal(t, answeredID(header), ev.Tags[dedup.TagCascadeOf])
	s := caller.Stats()
	assert.Equal(t, dedup.Stats{Received: 1, Emitted: 1, Cascades: 1}, s)
}

func TestCrossServiceNothingLost(t *testing.T) {
	tests := map[string]struct {
		capture    bool
		writeFirst bool
		header     http.Header
	}{
		"downstream captured nothing":     {capture: false},
		"downstream event sampled out":    {capture: true, header: http.Header{"X-Drop": {"1"}}},
		"header written before capturing": {capture: true, writeFirst: true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			down := newDownstream(t, func(*http.Request) bool { return tt.capture }, tt.writeFirst)
			inner := sentrytest.NewTransport()
			caller := dedup.NewTransport(inner)
			defer down.transport.Close()

			sc, header := call(t, caller, down.srv.URL, tt.header)
			assert.Empty(t, header.Get(deduphttp.HeaderReported))
			caller.SendEvent(callerEvent(sc))
			caller.Close()
			assert.Len(t, inner.Events(), 1, "the caller reports its own error")
			assert.Zero(t, caller.Stats().Cascades)
		})
	}
}

func TestRoundTripperIgnoresBadHeaders(t *testing.T) {
	for _, v := range []string{"", "yes", "0af7651916cd43dd8448eb211c80319", "0af7651916cd43dd8448eb211c80319g"} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set(deduphttp.HeaderReported, v)
		}))
		inner := sentrytest.NewTransport()
		caller := dedup.NewTransport(inner)
		sc, _ := call(t, caller, srv.URL, nil)
		caller.SendEvent(callerEvent(sc))
		caller.Close()
		srv.Close()
		assert.Len(t, inner.Events(), 1, "header %q", v)
	}
}

// An answer of the fleet is honoured whatever the case of its id and
// whatever parameters it carries besides its tag, in any order.
func TestRoundTripperAcceptsParameters(t *testing.T) {
	callee := dedup.NewTransport(sentrytest.NewTransport())
	defer callee.Close()
	tp := sentrytest.TracerProvider("payment")
	defer func() { _ = tp.Shutdown(context.Background()) }()
	srv := httptest.NewServer(otelhttp.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in := callee.Incoming(r.Context())
		defer in.End()
		report(r.Context(), callee)
		id, tag, _ := strings.Cut(in.Answer(r.Header.Get(deduphttp.HeaderCaller)), ";")
		w.Header().Set(deduphttp.HeaderReported, strings.ToUpper(id)+"; v=2 ;"+strings.ToUpper(tag)+"; x")
	}), "payment", otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(propagation.TraceContext{})))
	defer srv.Close()
	inner := sentrytest.NewTransport()
	caller := dedup.NewTransport(inner, dedup.WithSendCascades())
	defer caller.Close()
	sc, _ := call(t, caller, srv.URL, nil)
	ev := callerEvent(sc)
	caller.SendEvent(ev)
	assert.Equal(t, eventID, ev.Tags[dedup.TagCascadeOf])
	assert.Zero(t, caller.Stats().Untrusted)
}

func TestHandlerWithoutSpanPassesThrough(t *testing.T) {
	tr := dedup.NewTransport(sentrytest.NewTransport())
	defer tr.Close()
	called := false
	h := deduphttp.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		called = true
		w.WriteHeader(http.StatusTeapot)
	}), tr)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	assert.True(t, called)
	assert.Equal(t, http.StatusTeapot, rec.Code)
	assert.Empty(t, rec.Header().Get(deduphttp.HeaderReported))

	// With a span but no event: no header, and Write alone still works.
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}})
	h = deduphttp.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok"))
		http.NewResponseController(w).Flush()
	}), tr)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil).WithContext(trace.ContextWithSpanContext(context.Background(), sc)))
	assert.Equal(t, "ok", rec.Body.String())
	assert.True(t, rec.Flushed)
	assert.Empty(t, rec.Header().Get(deduphttp.HeaderReported))
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
