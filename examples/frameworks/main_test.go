package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"
	sentrygin "github.com/getsentry/sentry-go/gin"
	sentryslog "github.com/getsentry/sentry-go/slog"
	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/contrib/instrumentation/github.com/gin-gonic/gin/otelgin"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/internal/fakesentry"
	"github.com/tracedup/tracedup/internal/sentrytest"
	"github.com/tracedup/tracedup/sentryotel"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// failing is how many checkouts each end-to-end test sends; all of them fail.
const failing = 20

// window is the tests' dedup window: far longer than a test may wait, so
// that an event that reaches Sentry before the final flush was decided at
// its request's end (WithRequestGrace, 50 ms), never by its window.
const window = 10 * time.Minute

// reportWait bounds the wait for the reports before the final flush: far
// above the grace, far below the window.
const reportWait = 5 * time.Second

// TestEveryVariantSendsOnlyTheOrigin is the end-to-end test, per
// framework: N failed checkouts through gateway, order and payment, each
// with a real sentry-go client, dedup.Transport and HTTP transport, give N
// events, each payment's error, each carrying its checkout's trace id, and
// each reported when its request ended, before any flush.
func TestEveryVariantSendsOnlyTheOrigin(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			fake, err := fakesentry.New()
			require.NoError(t, err)
			defer func() { assert.NoError(t, fake.Close()) }()

			var settled map[string]dedup.Stats
			var early []fakesentry.Event
			res, err := shopRun(context.Background(), v, fake.DSN(), failing, window, func(s map[string]dedup.Stats) {
				settled = s
				// Every request has ended: their reports are on their way
				// within the grace, with no flush to push them.
				ctx, cancel := context.WithTimeout(context.Background(), reportWait)
				defer cancel()
				early, _ = fake.WaitFor(ctx, failing)
			})
			require.NoError(t, err)

			assert.Equal(t, uint64(failing), settled[payment].RequestEnded,
				"payment's traces decided at request end, not by the window: %+v", settled[payment])
			assert.Len(t, early, failing, "reports that arrived before the final flush")

			events := fake.Events()
			require.Zero(t, fake.Stats().Rejected, "fake Sentry rejected requests: %s", fake.Stats().LastRejection)
			assert.Equal(t, map[string]int{payment + " *main.PaymentDeclined": failing}, kinds(events),
				"one event per failed checkout, payment's")
			seen := map[int]bool{}
			for _, ev := range events {
				i := checkoutOf(ev.Event)
				assert.Equal(t, res.traces[i], ev.Event.Tags[sentryotel.TagTraceID], "checkout %d: the request's trace id", i)
				assert.False(t, seen[i] && isOrigin(ev.Event), "checkout %d: its origin reported twice", i)
				seen[i] = seen[i] || isOrigin(ev.Event)
			}
			assert.Len(t, seen, failing, "checkouts reported")
			assert.Equal(t, uint64(failing), res.stats[order].Cascades, "order's cascades suppressed: %+v", res.stats[order])
			assert.Equal(t, uint64(failing), res.stats[gateway].Cascades, "gateway's cascades suppressed: %+v", res.stats[gateway])
			for name, s := range res.stats {
				assert.Equal(t, s.Received, s.Emitted+s.Suppressed+s.Pending+s.Dropped, "%s: %+v", name, s)
				assert.Zero(t, s.Pending, "%s: pending after the flush", name)
			}
		})
	}
}

// TestGinContext: with real gin, otelgin and sentrygin, and gin's default
// ContextWithFallback (off), the *gin.Context given to
// sentryotel.CaptureException, to slog.ErrorContext or to logrus's
// WithContext finds the span otelgin started.
func TestGinContext(t *testing.T) {
	require.False(t, gin.New().ContextWithFallback, "gin's default")
	for _, tt := range []struct {
		name    string
		capture func(c *gin.Context, client *sentry.Client, err error)
	}{
		{"sentryotel.CaptureException", func(c *gin.Context, _ *sentry.Client, err error) {
			sentryotel.CaptureException(c, err)
		}},
		{"slog.ErrorContext", func(c *gin.Context, _ *sentry.Client, err error) {
			// sentryslog takes the hub from the context, which the
			// *gin.Context does not reach: give the logger's handler one.
			logger := slog.New(sentryHandlerOn(sentrygin.GetHubFromContext(c)))
			logger.ErrorContext(c, err.Error(), "error", err)
		}},
		{"logrus WithContext", func(c *gin.Context, client *sentry.Client, err error) {
			newLogrus(client).WithContext(c).WithError(err).Error(err.Error())
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tp := sentrytest.TracerProvider("payment")
			defer func() { _ = tp.Shutdown(context.Background()) }()
			inner := sentrytest.NewTransport()
			client, err := sentry.NewClient(sentryotel.WrapOptions(sentry.ClientOptions{Transport: inner}))
			require.NoError(t, err)
			defer client.Close()

			spans := make(chan trace.SpanContext, 1)
			engine := gin.New()
			engine.Use(otelgin.Middleware("payment", otelgin.WithTracerProvider(tp), otelgin.WithPropagators(propagator)),
				sentrygin.New(sentrygin.Options{}))
			engine.POST("/charge", func(c *gin.Context) {
				spans <- trace.SpanContextFromContext(c.Request.Context())
				tt.capture(c, client, &PaymentDeclined{Order: 1})
				c.Status(http.StatusPaymentRequired)
			})
			handler := withHub(engine, client)

			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/charge", strings.NewReader(`{"order":1}`)))
			require.Equal(t, http.StatusPaymentRequired, rec.Code)

			sc := <-spans
			require.True(t, sc.IsValid(), "otelgin started a span")
			events := inner.Events()
			require.Len(t, events, 1)
			assert.Equal(t, sc.TraceID().String(), events[0].Tags[sentryotel.TagTraceID])
			assert.Equal(t, sc.SpanID().String(), events[0].Tags[sentryotel.TagSpanID])
			assert.Equal(t, "payment", events[0].Tags[sentryotel.TagServiceName])
		})
	}
}

// TestRun runs the program as go run does, on every variant.
func TestRun(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-requests", "3"}, &stdout, &stderr)
	require.Equal(t, 0, code, "stderr: %s", stderr.String())
	out := stdout.String()
	assert.Contains(t, out, "| variant | events | carry the request's trace id | collapsed |")
	for _, v := range variants {
		assert.Contains(t, out, "| "+v.name+" | ", "row of %s", v.name)
	}
	assert.Contains(t, out, "| net/http | 3 | 3 | 3 / 3 | 3 / 3 |", "the control collapses")
}

func TestRunBadArguments(t *testing.T) {
	for _, args := range [][]string{{"-requests", "0"}, {"-variant", "martini"}, {"extra"}} {
		assert.Equal(t, 2, run(context.Background(), args, io.Discard, io.Discard), "%q", args)
	}
}

// kinds counts events by service and exception type.
func kinds(events []fakesentry.Event) map[string]int {
	n := map[string]int{}
	for _, ev := range events {
		typ := ""
		if k := len(ev.Event.Exception); k > 0 {
			typ = ev.Event.Exception[k-1].Type
		}
		n[ev.Event.Tags[sentryotel.TagServiceName]+" "+typ]++
	}
	return n
}

// sentryHandlerOn is sentry-go's slog handler sending to hub when the log
// call's context has none.
func sentryHandlerOn(hub *sentry.Hub) slog.Handler {
	return sentryslog.Option{}.NewSentryHandler(sentry.SetHubOnContext(context.Background(), hub))
}
