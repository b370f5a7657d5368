package fakesentry_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tracedup/tracedup/internal/fakesentry"
)

// waitTimeout bounds every wait; tests never sleep, they wait on WaitFor.
const waitTimeout = 10 * time.Second

func newServer(t *testing.T, options ...fakesentry.Option) *fakesentry.Server {
	t.Helper()
	srv, err := fakesentry.New(options...)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, srv.Close()) })
	return srv
}

func waitCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

type checkoutError struct{ order int }

func (e *checkoutError) Error() string { return fmt.Sprintf("checkout of order %d failed", e.order) }

// TestSentryGoTransports sends an exception through a real sentry-go client
// with each of its HTTP transports and checks both the decoded event and the
// JSON on the wire.
func TestSentryGoTransports(t *testing.T) {
	tests := []struct {
		name      string
		transport func() sentry.Transport // nil: sentry-go's default, the telemetry buffer
		wantType  string                  // of client.Transport
	}{
		{"HTTPTransport", func() sentry.Transport { return sentry.NewHTTPTransport() }, "*sentry.HTTPTransport"},
		{"default telemetry buffer", nil, "*sentry.internalAsyncTransportAdapter"},
		{"HTTPSyncTransport", func() sentry.Transport { return sentry.NewHTTPSyncTransport() }, "*sentry.HTTPSyncTransport"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t)
			opts := sentry.ClientOptions{Dsn: srv.ProjectDSN("42"), Environment: "test", Release: "tracedup@1.0.0"}
			if tt.transport != nil {
				opts.Transport = tt.transport()
			}
			client, err := sentry.NewClient(opts)
			require.NoError(t, err)
			defer client.Close()
			require.Equal(t, tt.wantType, fmt.Sprintf("%T", client.Transport), "the path under test")

			hub := sentry.NewHub(client, sentry.NewScope())
			before := time.Now()
			var id *sentry.EventID
			hub.WithScope(func(scope *sentry.Scope) {
				scope.SetTag("otel.trace_id", "4bf92f3577b34da6a3ce929d0e0e4736")
				scope.SetTag("service.name", "checkout")
				scope.SetFingerprint([]string{"{{ default }}", "checkout"})
				scope.SetContext("order", sentry.Context{"id": 7, "items": []string{"a", "b"}})
				// An item whose payload holds newlines, so only its length frames it.
				scope.AddAttachment(&sentry.Attachment{Filename: "cart.txt", Payload: []byte("line 1\nline 2\n")})
				id = hub.CaptureException(&checkoutError{order: 7})
			})
			require.NotNil(t, id)
			require.True(t, client.Flush(waitTimeout), "flush timed out")

			events, err := srv.WaitFor(waitCtx(t), 1)
			require.NoError(t, err)
			require.Len(t, events, 1)
			got := events[0]

			assert.Equal(t, "42", got.Project)
			ev := got.Event
			require.NotNil(t, ev)
			assert.Equal(t, *id, ev.EventID)
			assert.Equal(t, map[string]string{
				"otel.trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
				"service.name":  "checkout",
			}, ev.Tags)
			assert.Equal(t, []string{"{{ default }}", "checkout"}, ev.Fingerprint)
			assert.Equal(t, sentry.Context{"id": float64(7), "items": []any{"a", "b"}}, ev.Contexts["order"],
				"JSON numbers decode as float64")
			assert.Contains(t, ev.Contexts, "trace", "sentry-go adds the propagation context")
			require.NotEmpty(t, ev.Exception)
			last := ev.Exception[len(ev.Exception)-1]
			assert.Equal(t, "*fakesentry_test.checkoutError", last.Type)
			assert.Equal(t, "checkout of order 7 failed", last.Value)
			assert.Equal(t, sentry.LevelError, ev.Level)
			assert.Equal(t, "test", ev.Environment)
			assert.Equal(t, "tracedup@1.0.0", ev.Release)
			assert.Equal(t, "sentry.go", ev.Sdk.Name)
			assert.WithinRange(t, ev.Timestamp, before.Add(-time.Second), time.Now().Add(time.Second))

			// The wire format itself.
			var raw map[string]any
			require.NoError(t, json.Unmarshal(got.Raw, &raw))
			assert.Equal(t, string(*id), raw["event_id"])
			assert.Equal(t, "go", raw["platform"])
			assert.Equal(t, "error", raw["level"])
			assert.Equal(t, []any{"{{ default }}", "checkout"}, raw["fingerprint"])
			assert.Equal(t, map[string]any{"otel.trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "service.name": "checkout"}, raw["tags"])
			assert.JSONEq(t, `{"id":7,"items":["a","b"]}`, mustJSON(t, raw["contexts"].(map[string]any)["order"]))
			ts, ok := raw["timestamp"].(string)
			require.True(t, ok, "timestamp travels as a string: %v", raw["timestamp"])
			_, err = time.Parse(time.RFC3339Nano, ts)
			assert.NoError(t, err, "timestamp %q is RFC 3339", ts)
			for _, field := range []string{"type", "spans", "start_timestamp"} {
				assert.NotContains(t, raw, field, "error events carry no transaction fields")
			}

			var header map[string]any
			require.NoError(t, json.Unmarshal(got.EnvelopeHeader, &header))
			assert.Equal(t, string(*id), header["event_id"])
			assert.Equal(t, srv.ProjectDSN("42"), header["dsn"])
			assert.Contains(t, header, "sent_at")

			assert.Equal(t, "application/x-sentry-envelope", got.Header.Get("Content-Type"))
			assert.Equal(t, "sentry.go/"+sentry.SDKVersion, got.Header.Get("User-Agent"))
			assert.Equal(t, "Sentry sentry_version=7, sentry_client=sentry.go/"+sentry.SDKVersion+", sentry_key=public",
				got.Header.Get("X-Sentry-Auth"))
			assert.Empty(t, got.Header.Get("Content-Encoding"), "sentry-go v0.46.2 does not compress")

			st := srv.Stats()
			assert.Equal(t, uint64(1), st.Envelopes)
			assert.Equal(t, uint64(1), st.Events)
			assert.Equal(t, map[string]uint64{"event": 1, "attachment": 1}, st.Items)
			assert.Zero(t, st.Rejected, st.LastRejection)
		})
	}
}

func TestSentryGoTransaction(t *testing.T) {
	srv := newServer(t)
	client, err := sentry.NewClient(sentry.ClientOptions{
		Dsn: srv.DSN(), Transport: sentry.NewHTTPSyncTransport(),
		EnableTracing: true, TracesSampleRate: 1,
	})
	require.NoError(t, err)
	defer client.Close()

	ctx := sentry.SetHubOnContext(t.Context(), sentry.NewHub(client, sentry.NewScope()))
	tx := sentry.StartTransaction(ctx, "GET /checkout")
	child := tx.StartChild("db.query")
	child.Status = sentry.SpanStatusInternalError
	child.Finish()
	tx.Finish()

	assert.Equal(t, 0, srv.Len(), "transactions are not error events")
	txs := srv.Transactions()
	require.Len(t, txs, 1)
	assert.Equal(t, "1", txs[0].Project)
	assert.Equal(t, "GET /checkout", txs[0].Transaction)
	assert.Equal(t, tx.TraceID.String(), txs[0].TraceID)
	assert.Equal(t, tx.SpanID.String(), txs[0].SpanID)
	assert.Contains(t, string(txs[0].Raw), `"status":"internal_error"`)
	assert.Equal(t, uint64(1), srv.Stats().Transactions)
}

const (
	goodEventID = "9ec79c33ec9942ab8353589fcb2e04dc"
	goodEvent   = `{"event_id":"` + goodEventID + `","level":"error","message":"boom","timestamp":"2024-05-06T07:08:09.123456Z",` +
		`"tags":{"otel.trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"},"fingerprint":["x"],` +
		`"contexts":{"trace":{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7"}},` +
		`"exception":[{"type":"*errors.errorString","value":"boom"}]}`
)

func envelope(header string, items ...string) string {
	return header + "\n" + strings.Join(items, "\n") + "\n"
}

func gzipped(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, err := zw.Write([]byte(s))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return b.Bytes()
}

// TestHandRolledRequests sends requests built by hand: the gzip encoding
// sentry-go does not use and every kind of malformed request.
func TestHandRolledRequests(t *testing.T) {
	good := envelope(`{"event_id":"`+goodEventID+`"}`,
		fmt.Sprintf(`{"type":"event","length":%d}`, len(goodEvent)), goodEvent)
	auth := "Sentry sentry_version=7, sentry_client=test/1, sentry_key=public"

	tests := []struct {
		name       string
		method     string
		path       string
		header     map[string]string
		body       []byte
		wantStatus int
		wantEvents int
		wantBody   string
	}{
		{name: "plain", body: []byte(good), wantStatus: 200, wantEvents: 1, wantBody: `{"id":"` + goodEventID + `"}`},
		{name: "gzip", header: map[string]string{"Content-Encoding": "gzip"}, body: gzipped(t, good),
			wantStatus: 200, wantEvents: 1, wantBody: `{"id":"` + goodEventID + `"}`},
		{name: "no length, id from event, no trailing slash", path: "/api/1/envelope",
			body: []byte("{}\n{\"type\":\"event\"}\n" + goodEvent), wantStatus: 200, wantEvents: 1, wantBody: `{"id":"` + goodEventID + `"}`},
		{name: "key in query", path: "/api/1/envelope/?sentry_key=public", header: map[string]string{"X-Sentry-Auth": ""},
			body: []byte(good), wantStatus: 200, wantEvents: 1},
		{name: "only a client report", body: []byte(envelope(`{}`, `{"type":"client_report"}`, `{"discarded_events":[]}`)),
			wantStatus: 200, wantBody: `{}`},
		{name: "bad gzip", header: map[string]string{"Content-Encoding": "gzip"}, body: []byte(good), wantStatus: 400},
		{name: "truncated gzip", header: map[string]string{"Content-Encoding": "gzip"}, body: gzipped(t, good)[:30], wantStatus: 400},
		{name: "unknown encoding", header: map[string]string{"Content-Encoding": "br"}, body: []byte(good), wantStatus: 415},
		{name: "garbage", body: []byte("this is not an envelope"), wantStatus: 400},
		{name: "empty body", body: nil, wantStatus: 400},
		{name: "length beyond body", body: []byte(envelope(`{}`, `{"type":"event","length":4096}`, goodEvent)), wantStatus: 400},
		{name: "event not JSON", body: []byte(envelope(`{}`, `{"type":"event"}`, `{oops`)), wantStatus: 400},
		{name: "event with wrong field type", body: []byte(envelope(`{}`, `{"type":"event"}`, `{"tags":{"a":1}}`)), wantStatus: 400},
		{name: "transaction not JSON", body: []byte(envelope(`{}`, `{"type":"transaction"}`, `[]`)), wantStatus: 400},
		{name: "good event then bad item", body: []byte(envelope(`{}`, `{"type":"event"}`, goodEvent, `{"type":""}`, `x`)), wantStatus: 400},
		{name: "wrong path", path: "/api/1/store/", body: []byte(good), wantStatus: 404},
		{name: "no project", path: "/api//envelope/", body: []byte(good), wantStatus: 404},
		{name: "root", path: "/", body: []byte(good), wantStatus: 404},
		{name: "wrong method", method: http.MethodGet, wantStatus: 405},
		{name: "no auth", header: map[string]string{"X-Sentry-Auth": ""}, body: []byte(good), wantStatus: 401},
		{name: "wrong key", header: map[string]string{"X-Sentry-Auth": "Sentry sentry_key=other"}, body: []byte(good), wantStatus: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t)
			method := tt.method
			if method == "" {
				method = http.MethodPost
			}
			path := tt.path
			if path == "" {
				path = "/api/1/envelope/"
			}
			req, err := http.NewRequestWithContext(t.Context(), method, srv.URL()+path, bytes.NewReader(tt.body))
			require.NoError(t, err)
			req.Header.Set("X-Sentry-Auth", auth)
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())

			assert.Equal(t, tt.wantStatus, resp.StatusCode, "body: %s", body)
			st := srv.Stats()
			assert.Equal(t, uint64(1), st.Requests)
			if tt.wantStatus == 200 {
				assert.Zero(t, st.Rejected, st.LastRejection)
				assert.Equal(t, uint64(1), st.Envelopes)
				assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
				if tt.wantBody != "" {
					assert.JSONEq(t, tt.wantBody, string(body))
				}
			} else {
				assert.Equal(t, uint64(1), st.Rejected)
				assert.Zero(t, st.Envelopes)
				assert.NotEmpty(t, st.LastRejection)
				t.Logf("rejection: %s", st.LastRejection)
			}
			if tt.wantStatus == 405 {
				assert.Equal(t, http.MethodPost, resp.Header.Get("Allow"))
			}
			require.Equal(t, tt.wantEvents, srv.Len())
			assert.Equal(t, uint64(tt.wantEvents), st.Events)
			if tt.wantEvents > 0 {
				got := srv.Events()[0]
				assert.Equal(t, "1", got.Project)
				assert.Equal(t, goodEvent, string(got.Raw), "raw JSON is kept byte for byte")
				assert.Equal(t, "boom", got.Event.Message)
				assert.Equal(t, time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.UTC), got.Event.Timestamp.UTC())
				assert.Equal(t, "00f067aa0ba902b7", got.Event.Contexts["trace"]["span_id"])
			}
		})
	}
}

func TestMaxBodySize(t *testing.T) {
	srv := newServer(t, fakesentry.WithMaxBodySize(64))
	big := envelope(`{}`, `{"type":"event"}`, goodEvent)
	for _, tc := range []struct {
		name     string
		encoding string
		body     []byte
	}{
		{"plain", "", []byte(big)},
		{"inflates past the limit", "gzip", gzipped(t, big)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL()+"/api/1/envelope/", bytes.NewReader(tc.body))
			require.NoError(t, err)
			req.Header.Set("X-Sentry-Auth", "Sentry sentry_key=public")
			req.Header.Set("Content-Encoding", tc.encoding)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			_, _ = io.Copy(io.Discard, resp.Body)
			require.NoError(t, resp.Body.Close())
			assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
		})
	}
	assert.Equal(t, uint64(2), srv.Stats().Rejected)
}

func TestRateLimit(t *testing.T) {
	srv := newServer(t, fakesentry.WithPublicKey("k3y"))
	client, err := sentry.NewClient(sentry.ClientOptions{Dsn: srv.DSN(), Transport: sentry.NewHTTPSyncTransport()})
	require.NoError(t, err)
	defer client.Close()
	hub := sentry.NewHub(client, sentry.NewScope())

	srv.SetRateLimit(time.Minute)
	hub.CaptureMessage("limited")
	hub.CaptureMessage("dropped by sentry-go without a request")
	srv.SetRateLimit(0)
	hub.CaptureMessage("still dropped: sentry-go honours the minute it was told")

	st := srv.Stats()
	assert.Equal(t, uint64(1), st.Requests)
	assert.Equal(t, uint64(1), st.RateLimited)
	assert.Zero(t, st.Rejected, st.LastRejection)
	assert.Zero(t, srv.Len())

	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL()+"/api/1/envelope/", strings.NewReader("{}\n"))
	require.NoError(t, err)
	req.Header.Set("X-Sentry-Auth", "Sentry sentry_key=k3y")
	srv.SetRateLimit(1500 * time.Millisecond)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Equal(t, "2", resp.Header.Get("Retry-After"), "rounded up to whole seconds")
	assert.Equal(t, "2::organization", resp.Header.Get("X-Sentry-Rate-Limits"))
}

func TestWaitFor(t *testing.T) {
	srv := newServer(t)
	client, err := sentry.NewClient(sentry.ClientOptions{Dsn: srv.DSN(), Transport: sentry.NewHTTPTransport()})
	require.NoError(t, err)
	defer client.Close()
	hub := sentry.NewHub(client, sentry.NewScope())

	t.Run("times out with what arrived", func(t *testing.T) {
		hub.CaptureMessage("one")
		require.True(t, client.Flush(waitTimeout))
		ctx, cancel := context.WithCancel(t.Context())
		cancel() // an ended context: WaitFor must not block
		events, err := srv.WaitFor(ctx, 2)
		require.ErrorIs(t, err, context.Canceled)
		assert.Len(t, events, 1)
	})

	t.Run("wakes on arrival from many senders", func(t *testing.T) {
		srv.Reset()
		assert.Zero(t, srv.Len())
		assert.Equal(t, fakesentry.Stats{Items: map[string]uint64{}}, srv.Stats())

		const n = 20
		var waiters sync.WaitGroup
		for range 3 {
			waiters.Go(func() {
				events, err := srv.WaitFor(waitCtx(t), n)
				assert.NoError(t, err)
				assert.GreaterOrEqual(t, len(events), n)
			})
		}
		var senders sync.WaitGroup
		for i := range n {
			senders.Go(func() { hub.Clone().CaptureMessage(fmt.Sprint("msg ", i)) })
		}
		senders.Wait()
		require.True(t, client.Flush(waitTimeout))
		waiters.Wait()
		assert.Equal(t, n, srv.Len())
		assert.Equal(t, uint64(n), srv.Stats().Items["event"])
	})

	t.Run("returns ErrClosed when the server closes", func(t *testing.T) {
		other := newServer(t)
		errc := make(chan error, 1)
		go func() {
			_, err := other.WaitFor(waitCtx(t), 1)
			errc <- err
		}()
		require.NoError(t, other.Close())
		require.NoError(t, other.Close(), "Close is idempotent")
		assert.ErrorIs(t, <-errc, fakesentry.ErrClosed)
		_, err := other.WaitFor(t.Context(), 1)
		assert.True(t, errors.Is(err, fakesentry.ErrClosed))
	})
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}
