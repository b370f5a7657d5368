package sentryotel_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"
	sentryhttp "github.com/getsentry/sentry-go/http"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracedup/tracedup/internal/fakesentry"
	"github.com/tracedup/tracedup/internal/sentrytest"
	"github.com/tracedup/tracedup/sentryotel"
)

// e2eTimeout bounds each wait on the network. It is a deadline for a test
// that would otherwise hang, not a delay: on a healthy run nothing waits for
// it.
const e2eTimeout = 10 * time.Second

// e2eTransports are the two ways sentry-go sends events over HTTP: the
// HTTPTransport a user may set, and the telemetry buffer it uses when
// ClientOptions.Transport is left nil.
var e2eTransports = []struct {
	name      string
	transport func() sentry.Transport // nil: sentry-go's default
}{
	{"HTTPTransport", func() sentry.Transport { return sentry.NewHTTPTransport() }},
	{"default transport", nil},
}

// e2eClient starts a fake Sentry and a real sentry-go client that sends to
// it over loopback HTTP, with the options wrapped by WrapOptions (the trace
// fingerprint on, to see it on the wire) and a user BeforeSend that tags the event team=payments. Both are closed when the
// test ends, the client first so that its workers stop before the server.
func e2eClient(t *testing.T, transport func() sentry.Transport) (*sentry.Client, *fakesentry.Server) {
	t.Helper()
	srv, err := fakesentry.New()
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, srv.Close()) })

	opts := sentry.ClientOptions{
		Dsn: srv.DSN(),
		BeforeSend: func(ev *sentry.Event, _ *sentry.EventHint) *sentry.Event {
			ev.Tags["team"] = "payments"
			return ev
		},
	}
	if transport != nil {
		opts.Transport = transport()
	}
	client, err := sentry.NewClient(sentryotel.WrapOptions(opts, sentryotel.WithTraceFingerprint()))
	require.NoError(t, err)
	t.Cleanup(client.Close)
	return client, srv
}

// received flushes client and returns the one event srv received.
func received(t *testing.T, client *sentry.Client, srv *fakesentry.Server) fakesentry.Event {
	t.Helper()
	require.True(t, client.Flush(e2eTimeout), "flush timed out")
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	events, err := srv.WaitFor(ctx, 1)
	require.NoError(t, err, "fakesentry stats: %+v", srv.Stats())
	require.Len(t, events, 1)
	return events[0]
}

// wantStamp is what a stamped event must carry.
type wantStamp struct {
	traceID, spanID, parentSpanID, service string
	// ancestors is contexts.tracedup.ancestors; "" wants none.
	ancestors string
}

// assertStamped checks the stamp on both the event as sentry-go's own type
// decodes it and the JSON that travelled on the wire, so that a field the
// hook sets but the transport drops or renames is caught.
func assertStamped(t *testing.T, got fakesentry.Event, want wantStamp) {
	t.Helper()
	wantTags := map[string]string{
		sentryotel.TagTraceID:     want.traceID,
		sentryotel.TagSpanID:      want.spanID,
		sentryotel.TagServiceName: want.service,
		"team":                    "payments", // the user's BeforeSend ran
	}
	wantTrace := map[string]any{
		"trace_id":       want.traceID,
		"span_id":        want.spanID,
		"parent_span_id": want.parentSpanID,
	}
	wantFingerprint := []string{"{{ default }}", want.traceID}

	ev := got.Event
	require.NotNil(t, ev)
	for k, v := range wantTags {
		assert.Equal(t, v, ev.Tags[k], "decoded tag %q", k)
	}
	tc := ev.Contexts["trace"]
	for k, v := range wantTrace {
		assert.Equal(t, v, tc[k], "decoded contexts.trace.%s", k)
	}
	assert.Equal(t, wantFingerprint, ev.Fingerprint, "decoded fingerprint")

	ancestors, _ := ev.Contexts["tracedup"]["ancestors"].(string)
	assert.Equal(t, want.ancestors, ancestors, "decoded ancestors")
	if want.ancestors == "" {
		assert.NotContains(t, ev.Contexts, "tracedup")
	}

	var raw struct {
		Tags     map[string]string         `json:"tags"`
		Contexts map[string]map[string]any `json:"contexts"`
		// Fingerprint as raw JSON, to see the exact array on the wire.
		Fingerprint json.RawMessage `json:"fingerprint"`
	}
	require.NoError(t, json.Unmarshal(got.Raw, &raw), "raw event: %s", got.Raw)
	for k, v := range wantTags {
		assert.Equal(t, v, raw.Tags[k], "raw tag %q in %s", k, got.Raw)
	}
	for k, v := range wantTrace {
		assert.Equal(t, v, raw.Contexts["trace"][k], "raw contexts.trace.%s in %s", k, got.Raw)
	}
	assert.JSONEq(t, `["{{ default }}","`+want.traceID+`"]`, string(raw.Fingerprint), "raw fingerprint")
}

// TestEndToEndCaptureException runs the whole path of the issue: a real OTel
// SDK tracer with the span processor, a root, a parent and a child span,
// sentryotel.CaptureException with the hub on ctx, a real sentry-go client
// and transport, HTTP to a fake Sentry. The event carries the child's chain.
func TestEndToEndCaptureException(t *testing.T) {
	for _, tt := range e2eTransports {
		t.Run(tt.name, func(t *testing.T) {
			tp := sdktrace.NewTracerProvider(
				sdktrace.WithSpanProcessor(sentryotel.NewSpanProcessor()),
				sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "payment"))))
			t.Cleanup(func() { assert.NoError(t, tp.Shutdown(context.Background())) })
			client, srv := e2eClient(t, tt.transport)
			hub := sentry.NewHub(client, sentry.NewScope())

			tracer := tp.Tracer("e2e")
			ctx, root := tracer.Start(context.Background(), "POST /checkout")
			ctx, parent := tracer.Start(ctx, "checkout")
			ctx, child := tracer.Start(ctx, "charge card")
			id := sentryotel.CaptureException(sentry.SetHubOnContext(ctx, hub), errors.New("card declined"))
			child.End()
			parent.End()
			root.End()
			require.NotNil(t, id, "the event was dropped before the transport")

			got := received(t, client, srv)
			assert.Equal(t, *id, got.Event.EventID)
			assertStamped(t, got, wantStamp{
				traceID:      child.SpanContext().TraceID().String(),
				spanID:       child.SpanContext().SpanID().String(),
				parentSpanID: parent.SpanContext().SpanID().String(),
				service:      "payment",
				ancestors:    parent.SpanContext().SpanID().String() + "," + root.SpanContext().SpanID().String(),
			})
		})
	}
}

// TestEndToEndHandlerCapture captures without a context, as most handler code
// does: hub.CaptureException(err) in a handler wrapped by sentryhttp inside
// otelhttp. The caller's otelhttp transport propagates the trace, so the
// server span has a remote parent; the event must carry the server span's
// ids and the parent span id that arrived in the traceparent header.
func TestEndToEndHandlerCapture(t *testing.T) {
	for _, tt := range e2eTransports {
		t.Run(tt.name, func(t *testing.T) {
			tp := sentrytest.TracerProvider("order")
			t.Cleanup(func() { assert.NoError(t, tp.Shutdown(context.Background())) })
			client, fake := e2eClient(t, tt.transport)
			hub := sentry.NewHub(client, sentry.NewScope())
			prop := propagation.TraceContext{}

			type seen struct {
				span        trace.SpanContext
				traceparent string
			}
			seenc := make(chan seen, 1)
			mux := http.NewServeMux()
			mux.HandleFunc("/orders", func(w http.ResponseWriter, r *http.Request) {
				seenc <- seen{trace.SpanContextFromContext(r.Context()), r.Header.Get("traceparent")}
				sentry.GetHubFromContext(r.Context()).CaptureException(errors.New("payment service unavailable"))
				w.WriteHeader(http.StatusBadGateway)
			})
			handler := otelhttp.NewHandler(
				sentryhttp.New(sentryhttp.Options{}).Handle(mux), "order",
				otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(prop))
			api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				// sentryhttp takes the hub on the request context, else
				// clones the global one; keep the global hub out of it.
				handler.ServeHTTP(w, r.WithContext(sentry.SetHubOnContext(r.Context(), hub.Clone())))
			}))
			defer api.Close()

			httpClient := &http.Client{Transport: otelhttp.NewTransport(api.Client().Transport,
				otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(prop))}
			ctx, root := tp.Tracer("e2e").Start(context.Background(), "gateway")
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, api.URL+"/orders", nil)
			require.NoError(t, err)
			resp, err := httpClient.Do(req)
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
			root.End()
			assert.Equal(t, http.StatusBadGateway, resp.StatusCode)

			s := <-seenc
			require.True(t, s.span.IsValid(), "otelhttp started no server span")
			// traceparent: version-traceid-parentid-flags, as sent on the wire.
			fields := strings.Split(s.traceparent, "-")
			require.Len(t, fields, 4, "traceparent %q", s.traceparent)
			require.Equal(t, root.SpanContext().TraceID().String(), fields[1], "one trace from gateway to order")

			assertStamped(t, received(t, client, fake), wantStamp{
				traceID:      s.span.TraceID().String(),
				spanID:       s.span.SpanID().String(),
				parentSpanID: fields[2],
				service:      "order",
			})
		})
	}
}
