package dedup_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/internal/fakesentry"
)

// TestBurstThroughHTTPTransport decides many traces at once into sentry-go's
// real HTTPTransport, whose queue drops what does not fit, and checks that
// every root cause reaches the endpoint.
func TestBurstThroughHTTPTransport(t *testing.T) {
	server, err := fakesentry.New()
	require.NoError(t, err)
	defer func() { _ = server.Close() }()

	const traces = 400
	h := sentry.NewHTTPTransport()
	h.BufferSize = 20 // a small queue, so an unpaced burst would overflow it
	tr := dedup.NewTransport(h)
	client, err := sentry.NewClient(sentry.ClientOptions{Dsn: server.DSN(), Transport: tr})
	require.NoError(t, err)
	defer client.Close()

	for i := range traces {
		for _, ev := range cascade(fmt.Sprintf("%032x", i+1)) {
			tr.SendEvent(ev)
		}
	}
	require.True(t, tr.Flush(30*time.Second), "every window decided and handed over at once")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := server.WaitFor(ctx, traces)
	require.NoError(t, err, "events at the endpoint: %d of %d", len(got), traces)
	assert.Len(t, got, traces)
	for _, ev := range got {
		assert.Equal(t, "payment", ev.Event.Tags["service.name"])
		assert.Equal(t, "2", ev.Event.Tags[dedup.TagSuppressed])
	}
	s := tr.Stats()
	assert.Equal(t, dedup.Stats{Received: 3 * traces, Emitted: traces, Suppressed: 2 * traces}, s)
}

// TestHTTPTransportBurstFitsItsQueue: wrapping a *sentry.HTTPTransport whose
// queue is smaller than WithMaxBurst, the burst shrinks to half its queue,
// so a burst of decisions never overflows it. With the burst left at its
// default, 100, the queue of 10 drops most of the 60 reports.
func TestHTTPTransportBurstFitsItsQueue(t *testing.T) {
	server, err := fakesentry.New()
	require.NoError(t, err)
	defer func() { _ = server.Close() }()

	const traces = 60
	h := sentry.NewHTTPTransport()
	h.BufferSize = 10
	tr := dedup.NewTransport(h)
	tr.Configure(sentry.ClientOptions{Dsn: server.DSN()})
	defer tr.Close()
	for i := range traces {
		tr.SendEvent(cascade(fmt.Sprintf("%032x", i+1))[0])
	}
	require.True(t, tr.Flush(30*time.Second))
	assert.Equal(t, traces, server.Len(), "reports at the endpoint")
	assert.Equal(t, dedup.Stats{Received: traces, Emitted: traces}, tr.Stats())
}

// The blast radius where a Sentry user looks: with logs on, an error
// suppressed as a cascade of another service's report is logged on its
// trace, naming that report, through sentry-go's real HTTPTransport. With
// logs off, nothing is.
func TestCascadeIsLoggedOnItsTrace(t *testing.T) {
	for _, logs := range []bool{true, false} {
		t.Run(fmt.Sprintf("EnableLogs=%v", logs), func(t *testing.T) {
			server, err := fakesentry.New()
			require.NoError(t, err)
			defer func() { _ = server.Close() }()
			tr := dedup.NewTransport(sentry.NewHTTPTransport())
			client, err := sentry.NewClient(sentry.ClientOptions{Dsn: server.DSN(), Transport: tr,
				EnableLogs: logs, Environment: "prod"})
			require.NoError(t, err)
			defer client.Close()

			// Order called payment, which reported the failure behind it.
			const downstream = "0123456789abcdef0123456789abcdef"
			tr.Outgoing(spanCtx(t, traceA, "00000000000000b2"), "POST payment/charge", downstream)
			tr.SendEvent(errEvent(traceA, "00000000000000b2", "00000000000000a1", "order", "*main.CallFailed"))
			require.True(t, tr.Flush(10*time.Second))

			s := tr.Stats()
			assert.Equal(t, uint64(1), s.Cascades, "%+v", s)
			assert.Zero(t, server.Len(), "the cascade itself is not sent")
			if !logs {
				assert.Empty(t, server.Logs())
				assert.Zero(t, s.CascadeLogs)
				return
			}
			assert.Equal(t, uint64(1), s.CascadeLogs, "%+v", s)
			got := server.Logs()
			require.Len(t, got, 1)
			l := got[0]
			assert.Equal(t, traceA, l.TraceID)
			assert.Equal(t, "00000000000000b2", l.SpanID)
			assert.Equal(t, downstream, l.Attributes[dedup.LogAttrCascadeOf])
			assert.Equal(t, "*main.CallFailed", l.Attributes[dedup.LogAttrExceptionType])
			assert.Equal(t, "order", l.Attributes["service.name"])
			assert.Equal(t, "prod", l.Attributes["sentry.environment"])
			assert.Contains(t, l.Body, downstream)
		})
	}
}
