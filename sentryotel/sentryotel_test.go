package sentryotel_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/getsentry/sentry-go"
	sentryhttp "github.com/getsentry/sentry-go/http"
	sentrygootel "github.com/getsentry/sentry-go/otel"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/tracedup/tracedup/internal/sentrytest"
	"github.com/tracedup/tracedup/sentryotel"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// spans starts a parent and a child span on a provider named service.
func spans(t testing.TB, service string) (tp *sdktrace.TracerProvider, ctx context.Context, parent, child trace.Span) {
	tp = sentrytest.TracerProvider(service)
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tr := tp.Tracer("test")
	ctx, parent = tr.Start(context.Background(), "parent")
	ctx, child = tr.Start(ctx, "child")
	t.Cleanup(func() { child.End(); parent.End() })
	return tp, ctx, parent, child
}

func stampedEvent() *sentry.Event {
	ev := sentry.NewEvent()
	ev.Exception = []sentry.Exception{{Type: "*main.PaymentDeclined", Value: "card declined"}}
	return ev
}

func TestBeforeSendStampsFromHintContext(t *testing.T) {
	_, ctx, parent, child := spans(t, "payment")
	hook := sentryotel.BeforeSend(nil)

	ev := hook(stampedEvent(), &sentry.EventHint{Context: ctx})

	require.NotNil(t, ev)
	traceID := child.SpanContext().TraceID().String()
	spanID := child.SpanContext().SpanID().String()
	assert.Equal(t, traceID, ev.Tags[sentryotel.TagTraceID])
	assert.Equal(t, spanID, ev.Tags[sentryotel.TagSpanID])
	assert.Equal(t, "payment", ev.Tags[sentryotel.TagServiceName])
	assert.Equal(t, sentry.Context{
		"trace_id":       traceID,
		"span_id":        spanID,
		"parent_span_id": parent.SpanContext().SpanID().String(),
	}, ev.Contexts["trace"])
	assert.Empty(t, ev.Fingerprint, "the trace fingerprint is off by default")
}

func TestBeforeSendStampsFromHintRequest(t *testing.T) {
	_, ctx, _, child := spans(t, "order")
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/orders", nil)

	ev := sentryotel.BeforeSend(nil)(stampedEvent(), &sentry.EventHint{Request: req})

	assert.Equal(t, child.SpanContext().SpanID().String(), ev.Tags[sentryotel.TagSpanID])
	assert.Equal(t, "order", ev.Tags[sentryotel.TagServiceName])
}

func TestBeforeSendRootSpanHasNoParent(t *testing.T) {
	tp := sentrytest.TracerProvider("gateway")
	defer func() { _ = tp.Shutdown(context.Background()) }()
	ctx, root := tp.Tracer("test").Start(context.Background(), "root")
	defer root.End()
	ev := stampedEvent()
	// sentry-go's propagation context leaves ids of its own trace here.
	ev.Contexts["trace"] = sentry.Context{"trace_id": "x", "span_id": "y", "parent_span_id": "z", "op": "http.server"}

	ev = sentryotel.BeforeSend(nil)(ev, &sentry.EventHint{Context: ctx})

	assert.Equal(t, sentry.Context{
		"trace_id": root.SpanContext().TraceID().String(),
		"span_id":  root.SpanContext().SpanID().String(),
		"op":       "http.server",
	}, ev.Contexts["trace"], "ids replaced, sentry's parent dropped, other keys kept")
}

func TestBeforeSendRemoteSpanContextGivesIDsOnly(t *testing.T) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6}, Remote: true,
	})
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), sc)

	ev := sentryotel.BeforeSend(nil)(stampedEvent(), &sentry.EventHint{Context: ctx})

	assert.Equal(t, map[string]string{
		sentryotel.TagTraceID: sc.TraceID().String(),
		sentryotel.TagSpanID:  sc.SpanID().String(),
	}, ev.Tags)
	assert.NotContains(t, ev.Contexts["trace"], "parent_span_id")
}

func TestBeforeSendFingerprint(t *testing.T) {
	_, ctx, _, child := spans(t, "payment")
	traceID := child.SpanContext().TraceID().String()
	hint := &sentry.EventHint{Context: ctx}
	on := []sentryotel.Option{sentryotel.WithTraceFingerprint()}

	tests := []struct {
		name    string
		options []sentryotel.Option
		in      []string
		want    []string
	}{
		{"off by default", nil, nil, nil},
		{"off by default keeps user's", []sentryotel.Option{nil}, []string{"a"}, []string{"a"}},
		{"default kept first", on, nil, []string{"{{ default }}", traceID}},
		{"user's own kept", on, []string{"payments", "{{ default }}"}, []string{"payments", "{{ default }}", traceID}},
		{"not added twice", on, []string{"{{ default }}", traceID}, []string{"{{ default }}", traceID}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := stampedEvent()
			ev.Fingerprint = tt.in
			ev = sentryotel.BeforeSend(nil, tt.options...)(ev, hint)
			assert.Equal(t, tt.want, ev.Fingerprint)
		})
	}
}

func TestBeforeSendDoesNotShareFingerprintArray(t *testing.T) {
	_, ctx, _, _ := spans(t, "payment")
	shared := make([]string, 1, 4)
	shared[0] = "{{ default }}"
	ev := stampedEvent()
	ev.Fingerprint = shared

	sentryotel.BeforeSend(nil, sentryotel.WithTraceFingerprint())(ev, &sentry.EventHint{Context: ctx})

	assert.Equal(t, "", shared[:2][1], "the caller's array must not be written")
}

func TestBeforeSendLeavesAlone(t *testing.T) {
	_, ctx, _, _ := spans(t, "payment")
	hook := sentryotel.BeforeSend(nil)

	assert.Nil(t, hook(nil, &sentry.EventHint{Context: ctx}), "nil event")

	tx := sentry.NewEvent()
	tx.Type = "transaction"
	tx = hook(tx, &sentry.EventHint{Context: ctx})
	assert.Empty(t, tx.Tags, "transaction")
	assert.Empty(t, tx.Fingerprint, "transaction")

	for name, hint := range map[string]*sentry.EventHint{
		"nil hint":                 nil,
		"empty hint":               {},
		"context without span":     {Context: context.Background()},
		"request without span":     {Request: httptest.NewRequest(http.MethodGet, "/", nil)},
		"invalid span context":     {Context: trace.ContextWithSpanContext(context.Background(), trace.SpanContext{})},
		"canceled context no span": {Context: canceled()},
	} {
		t.Run(name, func(t *testing.T) {
			ev := &sentry.Event{} // nil maps on purpose
			ev = hook(ev, hint)
			assert.Empty(t, ev.Tags)
			assert.Empty(t, ev.Contexts)
			assert.Empty(t, ev.Fingerprint)
		})
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func TestBeforeSendNilMaps(t *testing.T) {
	_, ctx, _, child := spans(t, "payment")
	ev := sentryotel.BeforeSend(nil)(&sentry.Event{}, &sentry.EventHint{Context: ctx})
	assert.Equal(t, child.SpanContext().TraceID().String(), ev.Tags[sentryotel.TagTraceID])
	assert.Equal(t, child.SpanContext().TraceID().String(), ev.Contexts["trace"]["trace_id"])
}

func TestWrapOptionsChainsUserBeforeSend(t *testing.T) {
	_, ctx, _, child := spans(t, "payment")
	var sawTag string
	opts := sentryotel.WrapOptions(sentry.ClientOptions{
		BeforeSend: func(ev *sentry.Event, _ *sentry.EventHint) *sentry.Event {
			sawTag = ev.Tags[sentryotel.TagTraceID]
			if ev.Message == "drop me" {
				return nil
			}
			ev.Tags["user"] = "ran"
			return ev
		},
	})

	ev := opts.BeforeSend(stampedEvent(), &sentry.EventHint{Context: ctx})
	require.NotNil(t, ev)
	assert.Equal(t, child.SpanContext().TraceID().String(), sawTag, "the user's hook sees the stamped event")
	assert.Equal(t, "ran", ev.Tags["user"])

	drop := stampedEvent()
	drop.Message = "drop me"
	assert.Nil(t, opts.BeforeSend(drop, &sentry.EventHint{Context: ctx}), "the user's hook may still drop")
}

func TestWrapOptionsKeepsUserIntegrations(t *testing.T) {
	called := false
	opts := sentryotel.WrapOptions(sentry.ClientOptions{
		Integrations: func(in []sentry.Integration) []sentry.Integration {
			called = true
			return in[:0]
		},
	})
	out := opts.Integrations(nil)
	assert.True(t, called)
	require.Len(t, out, 1)
	assert.Equal(t, "tracedup.sentryotel", out[0].Name())
}

// newClient returns a client with opts wrapped by WrapOptions and an
// in-memory transport.
func newClient(t *testing.T, opts sentry.ClientOptions, options ...sentryotel.Option) (*sentry.Client, *sentrytest.Transport) {
	t.Helper()
	tr := sentrytest.NewTransport()
	opts.Transport = tr
	client, err := sentry.NewClient(sentryotel.WrapOptions(opts, options...))
	require.NoError(t, err)
	t.Cleanup(client.Close)
	return client, tr
}

func TestCaptureExceptionUsesHubFromContext(t *testing.T) {
	_, ctx, parent, child := spans(t, "payment")
	client, tr := newClient(t, sentry.ClientOptions{})
	hub := sentry.NewHub(client, sentry.NewScope())

	id := sentryotel.CaptureException(sentry.SetHubOnContext(ctx, hub), errors.New("card declined"))

	require.NotNil(t, id)
	events := tr.Events()
	require.Len(t, events, 1)
	ev := events[0]
	assert.Equal(t, *id, ev.EventID)
	assert.Equal(t, child.SpanContext().SpanID().String(), ev.Tags[sentryotel.TagSpanID])
	assert.Equal(t, parent.SpanContext().SpanID().String(), ev.Contexts["trace"]["parent_span_id"])
}

func TestCaptureExceptionWithoutClient(t *testing.T) {
	hub := sentry.NewHub(nil, sentry.NewScope())
	ctx := sentry.SetHubOnContext(context.Background(), hub)
	assert.Nil(t, sentryotel.CaptureException(ctx, errors.New("x")))
	//lint:ignore SA1012 a nil context is what this test is about
	assert.NotPanics(t, func() { sentryotel.CaptureException(nil, errors.New("x")) }) //nolint:staticcheck
}

// TestHandlerCapturesAreStamped checks the captures that carry no context:
// hub.CaptureException in a handler instrumented by otelhttp and sentryhttp,
// and a panic recovered by sentryhttp, with and without sentry-go's own OTel
// integration installed beside ours.
func TestHandlerCapturesAreStamped(t *testing.T) {
	for _, withSentryOtel := range []bool{false, true} {
		name := "alone"
		if withSentryOtel {
			name = "beside sentry-go NewOtelIntegration"
		}
		t.Run(name, func(t *testing.T) {
			tp := sentrytest.TracerProvider("order")
			defer func() { _ = tp.Shutdown(context.Background()) }()
			opts := sentry.ClientOptions{}
			if withSentryOtel {
				opts.Integrations = func(in []sentry.Integration) []sentry.Integration {
					return append(in, sentrygootel.NewOtelIntegration())
				}
			}
			client, tr := newClient(t, opts)

			spanIDs := make(chan string, 2)
			mux := http.NewServeMux()
			mux.HandleFunc("/error", func(w http.ResponseWriter, r *http.Request) {
				spanIDs <- trace.SpanContextFromContext(r.Context()).SpanID().String()
				sentry.GetHubFromContext(r.Context()).CaptureException(errors.New("payment failed"))
				w.WriteHeader(http.StatusBadGateway)
			})
			mux.HandleFunc("/panic", func(w http.ResponseWriter, r *http.Request) {
				spanIDs <- trace.SpanContextFromContext(r.Context()).SpanID().String()
				panic(errors.New("nil order"))
			})
			sh := sentryhttp.New(sentryhttp.Options{})
			// otelhttp outside sentryhttp: the request sentryhttp puts on the
			// scope carries the server span.
			handler := otelhttp.NewHandler(sh.Handle(mux), "order", otelhttp.WithTracerProvider(tp))
			hub := sentry.NewHub(client, sentry.NewScope())
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				handler.ServeHTTP(w, r.WithContext(sentry.SetHubOnContext(r.Context(), hub.Clone())))
			}))
			defer srv.Close()

			for _, path := range []string{"/error", "/panic"} {
				resp, err := srv.Client().Get(srv.URL + path)
				require.NoError(t, err)
				_ = resp.Body.Close()
			}

			events := tr.Events()
			require.Len(t, events, 2)
			for i, ev := range events {
				want := <-spanIDs
				assert.Equal(t, want, ev.Tags[sentryotel.TagSpanID], "event %d", i)
				assert.Equal(t, want, ev.Contexts["trace"]["span_id"], "event %d", i)
				assert.Equal(t, "order", ev.Tags[sentryotel.TagServiceName], "event %d", i)
				assert.Len(t, ev.Tags[sentryotel.TagTraceID], 32, "event %d", i)
			}
		})
	}
}

// TestCaptureWithoutSpanIsNotStamped: sentry-go's own propagation context
// puts ids in contexts.trace; they are not OTel's and must not become tags.
func TestCaptureWithoutSpanIsNotStamped(t *testing.T) {
	client, tr := newClient(t, sentry.ClientOptions{})
	hub := sentry.NewHub(client, sentry.NewScope())
	hub.CaptureException(errors.New("no span here"))

	events := tr.Events()
	require.Len(t, events, 1)
	assert.NotContains(t, events[0].Tags, sentryotel.TagTraceID)
	assert.Empty(t, events[0].Fingerprint)
}
