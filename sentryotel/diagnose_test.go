package sentryotel_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/getsentry/sentry-go"
	"github.com/stretchr/testify/assert"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/tracedup/tracedup/sentryotel"
)

type handlerFunc func(error)

func (f handlerFunc) Handle(err error) { f(err) }

// otelErrors collects what reaches otel.Handle during the test.
func otelErrors(t *testing.T) func() []error {
	var mu sync.Mutex
	var errs []error
	prev := otel.GetErrorHandler()
	otel.SetErrorHandler(handlerFunc(func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}))
	t.Cleanup(func() { otel.SetErrorHandler(prev) })
	return func() []error {
		mu.Lock()
		defer mu.Unlock()
		return append([]error(nil), errs...)
	}
}

// An error event that finds no span says why, once per process: no context
// was passed, or its context held no span; and a stamped one whose process
// propagates no trace context says that too.
func TestMissingTraceIsReportedOnce(t *testing.T) {
	sentryotel.ResetDiagnoses()
	t.Cleanup(sentryotel.ResetDiagnoses)
	handled := otelErrors(t)
	client, _ := newClient(t, sentry.ClientOptions{})
	hub := sentry.NewHub(client, sentry.NewScope())

	hub.CaptureException(errors.New("no context"))
	hub.CaptureException(errors.New("no context again"))
	assert.Equal(t, []error{sentryotel.ErrNoContext}, handled(), "once")

	sentryotel.CaptureException(sentry.SetHubOnContext(context.Background(), hub), errors.New("no span"))
	assert.Equal(t, []error{sentryotel.ErrNoContext, sentryotel.ErrNoSpan}, handled())

	hub.CaptureMessage("an info message") // not an error: nothing to say
	assert.Len(t, handled(), 2)

	prev := otel.GetTextMapPropagator()
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator())
	_, ctx, _, _ := spans(t, "payment")
	sentryotel.CaptureException(sentry.SetHubOnContext(ctx, hub), errors.New("stamped"))
	assert.Equal(t, []error{sentryotel.ErrNoContext, sentryotel.ErrNoSpan, sentryotel.ErrNoPropagator}, handled())

	sentryotel.ResetDiagnoses()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	sentryotel.CaptureException(sentry.SetHubOnContext(ctx, hub), errors.New("stamped"))
	assert.Len(t, handled(), 3, "a propagator that carries the trace: nothing to say")
}
