package sentryotel_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracedup/tracedup/sentryotel"
)

// ginShaped is a context of the shape of *gin.Context from gin v1.10 on,
// with its default ContextWithFallback off: it answers only its own keys,
// never from the request's context, and holds the request in a field.
type ginShaped struct {
	Request *http.Request
	keys    map[string]any
}

func (*ginShaped) Deadline() (time.Time, bool) { return time.Time{}, false }
func (*ginShaped) Done() <-chan struct{}       { return nil }
func (*ginShaped) Err() error                  { return nil }
func (c *ginShaped) Value(key any) any {
	if k, ok := key.(string); ok {
		return c.keys[k]
	}
	return nil
}

// oldGinShaped answers Value(0) with its request, as gin did up to v1.9,
// and holds it in no field of that name.
type oldGinShaped struct{ req *http.Request }

func (oldGinShaped) Deadline() (time.Time, bool) { return time.Time{}, false }
func (oldGinShaped) Done() <-chan struct{}       { return nil }
func (oldGinShaped) Err() error                  { return nil }
func (c oldGinShaped) Value(key any) any {
	if key == 0 {
		return c.req
	}
	return nil
}

// TestCaptureExceptionFindsTheRequestBehindAFrameworkContext: a framework's
// context whose Value does not reach the request's context (gin's by
// default) still finds the request's span and hub, through the request it
// exposes.
func TestCaptureExceptionFindsTheRequestBehindAFrameworkContext(t *testing.T) {
	for _, tt := range []struct {
		name string
		wrap func(*http.Request) context.Context
	}{
		{"Request field (gin v1.10 and later)", func(r *http.Request) context.Context { return &ginShaped{Request: r} }},
		{"Value(0) (gin up to v1.9)", func(r *http.Request) context.Context { return oldGinShaped{r} }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, ctx, _, child := spans(t, "payment")
			client, tr := newClient(t, sentry.ClientOptions{})
			hub := sentry.NewHub(client, sentry.NewScope())
			req := httptest.NewRequestWithContext(sentry.SetHubOnContext(ctx, hub), http.MethodPost, "/charge", nil)
			fc := tt.wrap(req)
			require.False(t, trace.SpanContextFromContext(fc).IsValid(), "the framework's context hides the span")

			id := sentryotel.CaptureException(fc, errors.New("card declined"))

			require.NotNil(t, id, "captured through the request's hub (the current hub has no client)")
			events := tr.Events()
			require.Len(t, events, 1)
			assert.Equal(t, child.SpanContext().TraceID().String(), events[0].Tags[sentryotel.TagTraceID])
			assert.Equal(t, child.SpanContext().SpanID().String(), events[0].Tags[sentryotel.TagSpanID])
			assert.Equal(t, "payment", events[0].Tags[sentryotel.TagServiceName])
		})
	}
}

// TestHookFindsTheRequestBehindAFrameworkContext: the hint's context of a
// log handler (slog.ErrorContext(c, ...) with a *gin.Context) is looked
// through the same way.
func TestHookFindsTheRequestBehindAFrameworkContext(t *testing.T) {
	_, ctx, _, child := spans(t, "order")
	client, tr := newClient(t, sentry.ClientOptions{})
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/orders", nil)

	client.CaptureException(errors.New("payment failed"), &sentry.EventHint{Context: &ginShaped{Request: req}}, sentry.NewScope())

	events := tr.Events()
	require.Len(t, events, 1)
	assert.Equal(t, child.SpanContext().SpanID().String(), events[0].Tags[sentryotel.TagSpanID])
}

// TestCaptureExceptionPrefersTheSpanInCtx: a context that carries a span is
// used as it is, whatever request it also exposes.
func TestCaptureExceptionPrefersTheSpanInCtx(t *testing.T) {
	_, ctx, _, child := spans(t, "payment")
	_, other, _, _ := spans(t, "payment")
	client, tr := newClient(t, sentry.ClientOptions{})
	hub := sentry.NewHub(client, sentry.NewScope())
	req := httptest.NewRequestWithContext(other, http.MethodPost, "/charge", nil)

	//lint:ignore SA1029 gin's key, on purpose
	sentryotel.CaptureException(sentry.SetHubOnContext(context.WithValue(ctx, 0, req), hub), errors.New("card declined"))

	events := tr.Events()
	require.Len(t, events, 1)
	assert.Equal(t, child.SpanContext().SpanID().String(), events[0].Tags[sentryotel.TagSpanID])
}
