package ingest_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracedup/tracedup/internal/envelope"
	"github.com/tracedup/tracedup/internal/fakesentry"
)

// Real sentry-go clients send an error, a transaction with a child span
// and a log to the relay: the error goes to the sink, the transaction's
// spans are learnt and the transaction and the log are forwarded upstream
// byte for byte, with the SDK's auth.
func TestSentryGoThroughTheRelay(t *testing.T) {
	up := newStandIn(t, nil)
	r := newRelay(t, up.URL, nil)
	client, err := sentry.NewClient(sentry.ClientOptions{
		Dsn: r.DSN(), EnableTracing: true, TracesSampleRate: 1, EnableLogs: true,
		ServerName: "host-1", Release: "checkout@1.2.3",
	})
	require.NoError(t, err)
	defer client.Close()
	hub := sentry.NewHub(client, sentry.NewScope())
	ctx := sentry.SetHubOnContext(context.Background(), hub)

	tx := sentry.StartSpan(ctx, "http.server", sentry.WithTransactionName("GET /checkout"))
	child := tx.StartChild("db.query")
	hub.Scope().SetTag("service.name", "checkout")
	eventID := hub.CaptureException(errors.New("card declined"))
	sentry.NewLogger(tx.Context()).Info().Emit("charging the card")
	child.Finish()
	tx.Finish()
	require.True(t, client.Flush(10*time.Second))
	r.Flush(t)

	events := r.sink.Events()
	require.Len(t, events, 1)
	ev := events[0]
	assert.Equal(t, "event", ev.Item.Type)
	assert.Contains(t, string(ev.Item.Payload), "card declined")
	assert.Contains(t, string(ev.Item.Payload), string(*eventID))
	assert.Equal(t, "42", ev.Req.Project)
	assert.Equal(t, testKey, ev.Req.Auth.Key)
	assert.Contains(t, ev.Req.Auth.Header, "sentry_key="+testKey)
	assert.Contains(t, ev.Req.UserAgent, "sentry")
	assert.Contains(t, string(ev.Req.EnvelopeHeader), string(*eventID))

	spans := r.sink.AllSpans()
	require.Len(t, spans, 2, "the transaction's root and its child")
	root, db := spans[0], spans[1]
	assert.Equal(t, trace.TraceID(tx.TraceID), root.TraceID)
	assert.Equal(t, trace.SpanID(tx.SpanID), root.SpanID)
	assert.True(t, root.Segment)
	assert.False(t, root.Parent.IsValid(), "the trace's first span")
	assert.Equal(t, trace.SpanID(child.SpanID), db.SpanID)
	assert.Equal(t, root.SpanID, db.Parent)
	assert.False(t, db.Segment)
	assert.Equal(t, "checkout", root.Service, "the tag service.name before the release")
	assert.WithinDuration(t, tx.StartTime, root.Start, time.Millisecond)
	assert.WithinDuration(t, tx.EndTime, root.End, time.Millisecond)
	assert.WithinDuration(t, child.EndTime, db.End, time.Millisecond)

	// Everything but the event reached the upstream, as the SDK sent it.
	got := up.Got()
	require.NotEmpty(t, got)
	types := map[string]int{}
	for _, f := range got {
		assert.Equal(t, "/api/42/envelope/", f.Path)
		assert.Contains(t, f.Header.Get("X-Sentry-Auth"), "sentry_key="+testKey)
		assert.Contains(t, f.Header.Get("User-Agent"), "sentry")
		env, err := envelope.Parse(f.Body)
		require.NoError(t, err)
		for _, it := range env.Items {
			types[it.Type]++
		}
		if env.Items[0].Type != "event" {
			assert.Contains(t, r.Bodies(), f.Body, "an envelope without an event is forwarded byte for byte")
		}
	}
	assert.Equal(t, 1, types["transaction"], "%v", types)
	assert.Equal(t, 1, types["log"], "%v", types)
	assert.Zero(t, types["event"], "events are the sink's")

	s := r.handler.Stats()
	assert.Equal(t, uint64(1), s.Events)
	assert.Equal(t, uint64(2), s.Spans)
	assert.Empty(t, s.Rejected)
}

// An upstream that answers 429 with X-Sentry-Rate-Limits makes the relay
// answer the SDK's next request of those categories 429 with Retry-After,
// and sentry-go then holds back on its own.
func TestUpstreamRateLimitReachesTheSDK(t *testing.T) {
	server, err := fakesentry.New(fakesentry.WithPublicKey(testKey))
	require.NoError(t, err)
	defer func() { _ = server.Close() }()
	server.SetRateLimit(30 * time.Second)
	r := newRelay(t, server.URL(), nil)

	tx := []byte(`{"event_id":"0123456789abcdef0123456789abcdef"}` + "\n" +
		`{"type":"transaction"}` + "\n" +
		`{"contexts":{"trace":{"trace_id":"0123456789abcdef0123456789abcdef","span_id":"0123456789abcdef"}},"start_timestamp":1700000000.5,"timestamp":1700000001}` + "\n")
	resp := r.post(t, "/api/42/envelope/", tx, "X-Sentry-Auth", testAuth)
	require.Equal(t, http.StatusOK, resp.StatusCode, bodyOf(resp))
	r.Flush(t)
	require.Equal(t, uint64(1), server.Stats().RateLimited)

	resp = r.post(t, "/api/42/envelope/", tx, "X-Sentry-Auth", testAuth)
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Equal(t, "30", resp.Header.Get("Retry-After"))
	assert.Contains(t, resp.Header.Get("X-Sentry-Rate-Limits"), "30:")
	assert.Equal(t, uint64(1), r.handler.Stats().Rejected["rate_limited"])
	assert.Equal(t, uint64(1), server.Stats().Requests, "the second envelope never left the relay")

	// A real SDK obeys the 429 and stops sending.
	client, err := sentry.NewClient(sentry.ClientOptions{Dsn: r.DSN(), EnableTracing: true, TracesSampleRate: 1})
	require.NoError(t, err)
	defer client.Close()
	hub := sentry.NewHub(client, sentry.NewScope())
	for range 3 {
		span := sentry.StartSpan(sentry.SetHubOnContext(context.Background(), hub), "op", sentry.WithTransactionName("t"))
		span.Finish()
		client.Flush(5 * time.Second)
	}
	assert.Equal(t, uint64(2), r.handler.Stats().Rejected["rate_limited"], "sentry-go backs off after the relay's 429")
}

// Upstream 503 then 200: the relay retries, and the SDK never knew.
func TestUpstream5xxIsRetried(t *testing.T) {
	up := newStandIn(t, func(n int, w http.ResponseWriter) {
		if n == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte(`{}`))
	})
	r := newRelay(t, up.URL, nil, upstreamNoWait())
	body := []byte("{}\n{\"type\":\"session\"}\n{\"sid\":\"1\"}\n")
	resp := r.post(t, "/api/42/envelope/", body, "X-Sentry-Auth", testAuth)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	r.Flush(t)
	got := up.Got()
	require.Len(t, got, 2)
	assert.Equal(t, body, got[1].Body)
	s := r.up.Stats()
	assert.Equal(t, uint64(1), s.Sent, "%+v", s)
	assert.Equal(t, uint64(1), s.Retries, "%+v", s)
}
