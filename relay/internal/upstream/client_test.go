package upstream

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tracedup/tracedup/relay/internal/ingest"
)

// fakeClock is a Clock whose Sleep returns at once, advancing Now by the
// wait, and remembers every wait.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) bool {
	c.mu.Lock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	c.mu.Unlock()
	return ctx.Err() == nil
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func (c *fakeClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// received is one request the stand-in upstream got.
type received struct {
	Path, RawQuery string
	Header         http.Header
	Body           []byte
}

// standIn is an upstream that records requests and answers each with the
// next of its responses (the last one repeats).
type standIn struct {
	*httptest.Server
	mu        sync.Mutex
	got       []received
	responses []func(w http.ResponseWriter)
}

func newStandIn(t *testing.T, responses ...func(w http.ResponseWriter)) *standIn {
	s := &standIn{responses: responses}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.got = append(s.got, received{r.URL.Path, r.URL.RawQuery, r.Header.Clone(), body})
		respond := func(w http.ResponseWriter) { w.WriteHeader(http.StatusOK) }
		if n := len(s.responses); n > 0 {
			respond = s.responses[min(len(s.got)-1, n-1)]
		}
		s.mu.Unlock()
		respond(w)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *standIn) Got() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.got...)
}

func status(code int, headers ...string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.WriteHeader(code)
	}
}

func newClient(t *testing.T, upstream string, options ...Option) *Client {
	u, err := url.Parse(upstream)
	require.NoError(t, err)
	c := New(u, options...)
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func flush(t *testing.T, c *Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.True(t, c.Flush(ctx), "flush: %+v", c.Stats())
}

// checkInvariant asserts that every request is accounted for.
func checkInvariant(t *testing.T, s Stats) {
	t.Helper()
	assert.Equal(t, s.Received, s.Sent+s.Dropped+s.Pending, "Received == Sent + Dropped + Pending: %+v", s)
	assert.Equal(t, s.Dropped, s.DroppedQueueFull+s.DroppedRateLimited+s.DroppedRejected+s.DroppedRetriesExhausted+s.DroppedClosed, "%+v", s)
}

var (
	headerAuth = &ingest.Request{Project: "42", UserAgent: "sentry.go/0.46.2",
		Auth: ingest.Auth{Key: "abc", Header: "Sentry sentry_version=7, sentry_client=sentry.go/0.46.2, sentry_key=abc"}}
	queryAuth = &ingest.Request{Project: "42", UserAgent: "node",
		Auth: ingest.Auth{Key: "abc", Query: "sentry_key=abc&sentry_version=7&sentry_client=sentry.javascript.node%2F10.0.0"}}
	dsnAuth = &ingest.Request{Project: "42", Auth: ingest.Auth{Key: "abc"}}
)

// The SDK's auth and User-Agent reach the upstream as they came, and the
// envelope byte for byte, at the envelope endpoint of the project.
func TestForwardsAuthAsItCame(t *testing.T) {
	up := newStandIn(t)
	c := newClient(t, up.URL+"/prefix/")
	envelope := []byte("{\"event_id\":\"0123\"}\n{\"type\":\"session\"}\n{\"sid\":\"x\"}\n")
	require.True(t, c.Send(headerAuth, envelope, []string{"session"}))
	require.True(t, c.Send(queryAuth, envelope, []string{"session"}))
	require.True(t, c.Send(dsnAuth, envelope, []string{"session"}))
	require.True(t, c.SendOTLP(headerAuth, []byte("otlp"), "application/x-protobuf", ""))
	flush(t, c)

	got := up.Got()
	require.Len(t, got, 4)
	byAuth := map[string]received{}
	for _, r := range got {
		byAuth[r.Header.Get("X-Sentry-Auth")+"?"+r.RawQuery+r.Path] = r
	}
	h := byAuth[headerAuth.Auth.Header+"?/prefix/api/42/envelope/"]
	assert.Equal(t, envelope, h.Body)
	assert.Equal(t, "sentry.go/0.46.2", h.Header.Get("User-Agent"))
	assert.Equal(t, "application/x-sentry-envelope", h.Header.Get("Content-Type"))
	q := byAuth["?"+queryAuth.Auth.Query+"/prefix/api/42/envelope/"]
	assert.Equal(t, envelope, q.Body, "query auth kept: %v", got)
	assert.Equal(t, "node", q.Header.Get("User-Agent"))
	d := byAuth["Sentry sentry_version=7, sentry_key=abc?/prefix/api/42/envelope/"]
	assert.Equal(t, envelope, d.Body, "a key from the envelope's dsn: %v", got)
	assert.Equal(t, userAgent, d.Header.Get("User-Agent"))
	o := byAuth[headerAuth.Auth.Header+"?/prefix/api/42/integration/otlp/v1/traces"]
	assert.Equal(t, []byte("otlp"), o.Body)
	assert.Equal(t, "application/x-protobuf", o.Header.Get("Content-Type"))

	s := c.Stats()
	assert.Equal(t, uint64(4), s.Sent)
	assert.Zero(t, s.QueuedBytes)
	checkInvariant(t, s)
}

// A 5xx or a network error is retried after a backoff that doubles, up to
// the bounded number of tries.
func TestRetriesTransientFailures(t *testing.T) {
	t.Run("503 then 200", func(t *testing.T) {
		up := newStandIn(t, status(http.StatusServiceUnavailable), status(http.StatusOK))
		clock := newFakeClock()
		c := newClient(t, up.URL, WithClock(clock), WithRetry(3, time.Second, 10*time.Second))
		require.True(t, c.Send(headerAuth, []byte("{}\n"), []string{"session"}))
		flush(t, c)
		s := c.Stats()
		assert.Equal(t, uint64(1), s.Sent, "%+v", s)
		assert.Equal(t, uint64(1), s.Retries, "%+v", s)
		assert.Equal(t, []time.Duration{time.Second}, clock.Sleeps())
		assert.Len(t, up.Got(), 2)
		checkInvariant(t, s)
	})
	t.Run("503 with Retry-After", func(t *testing.T) {
		up := newStandIn(t, status(http.StatusServiceUnavailable, "Retry-After", "7"), status(http.StatusOK))
		clock := newFakeClock()
		c := newClient(t, up.URL, WithClock(clock), WithRetry(3, time.Second, 10*time.Second))
		require.True(t, c.Send(headerAuth, []byte("{}\n"), []string{"session"}))
		flush(t, c)
		assert.Equal(t, []time.Duration{7 * time.Second}, clock.Sleeps())
		assert.Equal(t, uint64(1), c.Stats().Sent)
	})
	t.Run("always 502", func(t *testing.T) {
		up := newStandIn(t, status(http.StatusBadGateway))
		clock := newFakeClock()
		c := newClient(t, up.URL, WithClock(clock), WithRetry(4, time.Second, 3*time.Second))
		require.True(t, c.Send(headerAuth, []byte("{}\n"), []string{"session"}))
		flush(t, c)
		s := c.Stats()
		assert.Equal(t, uint64(1), s.DroppedRetriesExhausted, "%+v", s)
		assert.Equal(t, uint64(3), s.Retries)
		assert.Equal(t, []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}, clock.Sleeps())
		assert.Len(t, up.Got(), 4)
		checkInvariant(t, s)
	})
	t.Run("network error", func(t *testing.T) {
		up := newStandIn(t)
		addr := up.URL
		up.Close() // nothing listens there any more
		clock := newFakeClock()
		c := newClient(t, addr, WithClock(clock), WithRetry(2, time.Second, time.Second))
		require.True(t, c.Send(headerAuth, []byte("{}\n"), []string{"session"}))
		flush(t, c)
		s := c.Stats()
		assert.Equal(t, uint64(1), s.DroppedRetriesExhausted, "%+v", s)
		assert.Equal(t, []time.Duration{time.Second}, clock.Sleeps())
		checkInvariant(t, s)
	})
	t.Run("400 is not retried", func(t *testing.T) {
		up := newStandIn(t, status(http.StatusBadRequest))
		clock := newFakeClock()
		c := newClient(t, up.URL, WithClock(clock))
		require.True(t, c.Send(headerAuth, []byte("{}\n"), []string{"session"}))
		flush(t, c)
		s := c.Stats()
		assert.Equal(t, uint64(1), s.DroppedRejected, "%+v", s)
		assert.Empty(t, clock.Sleeps())
		assert.Len(t, up.Got(), 1)
		checkInvariant(t, s)
	})
}

// An upstream 429 with X-Sentry-Rate-Limits limits only the categories it
// names, until its deadline; a bare 429 limits every category.
func TestHonoursUpstreamRateLimits(t *testing.T) {
	t.Run("per category", func(t *testing.T) {
		up := newStandIn(t, status(http.StatusTooManyRequests, "Retry-After", "60",
			"X-Sentry-Rate-Limits", "60:transaction;span:organization:quota_exceeded, 5:log_item"))
		clock := newFakeClock()
		c := newClient(t, up.URL, WithClock(clock))
		require.True(t, c.Send(headerAuth, []byte("{}\n"), []string{"transaction"}))
		flush(t, c)
		s := c.Stats()
		assert.Equal(t, uint64(1), s.DroppedRateLimited, "%+v", s)
		assert.Equal(t, uint64(1), s.RateLimitedResponses)

		assert.Equal(t, 60*time.Second, c.RetryAfter([]string{"transaction"}))
		assert.Equal(t, 60*time.Second, c.RetryAfter([]string{"transaction", "span"}))
		assert.Equal(t, 5*time.Second, c.RetryAfter([]string{"log_item"}))
		assert.Zero(t, c.RetryAfter([]string{"error"}))
		assert.Zero(t, c.RetryAfter([]string{"transaction", "error"}), "the error can still go")
		assert.Zero(t, c.RetryAfter(nil))

		assert.False(t, c.Send(headerAuth, []byte("{}\n"), []string{"transaction"}), "limited: refused at once")
		assert.Len(t, up.Got(), 1, "nothing sent while limited")
		clock.Advance(60 * time.Second)
		assert.Zero(t, c.RetryAfter([]string{"transaction"}))
		s = c.Stats()
		assert.Equal(t, uint64(2), s.DroppedRateLimited)
		checkInvariant(t, s)
	})
	t.Run("every category", func(t *testing.T) {
		up := newStandIn(t, status(http.StatusTooManyRequests, "Retry-After", "30"))
		clock := newFakeClock()
		c := newClient(t, up.URL, WithClock(clock))
		require.True(t, c.Send(headerAuth, []byte("{}\n"), []string{"error"}))
		flush(t, c)
		assert.Equal(t, 30*time.Second, c.RetryAfter([]string{"span"}))
		assert.Equal(t, 30*time.Second, c.RetryAfter(nil))
	})
}

func TestParseRateLimits(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tests := []struct {
		header string
		want   map[string]time.Duration
	}{
		{"60:transaction", map[string]time.Duration{"transaction": time.Minute}},
		{"2700:default;error;security", map[string]time.Duration{"default": 2700 * time.Second, "error": 2700 * time.Second, "security": 2700 * time.Second}},
		{"10::organization", map[string]time.Duration{"": 10 * time.Second}},
		{"1.2:error, 5:error", map[string]time.Duration{"error": 5 * time.Second}},
		{"x:error, -3:span, 4", map[string]time.Duration{"span": 0, "": 4 * time.Second}},
	}
	for _, tt := range tests {
		l := limits{}
		l.parseRateLimits(tt.header, now)
		got := map[string]time.Duration{}
		for c, d := range l {
			got[c] = d.Sub(now)
		}
		assert.Equal(t, tt.want, got, tt.header)
	}
}

// The queue is bounded in bytes: past the budget Send refuses at once,
// counted, and past three quarters RetryAfter tells SDKs to wait.
func TestQueueIsBoundedInBytes(t *testing.T) {
	release := make(chan struct{})
	up := newStandIn(t, func(w http.ResponseWriter) { <-release; w.WriteHeader(http.StatusOK) })
	c := newClient(t, up.URL, WithWorkers(1), WithMaxQueuedBytes(100), WithBusyRetryAfter(3*time.Second))
	body := make([]byte, 40)
	assert.True(t, c.Send(headerAuth, body, []string{"session"}))
	assert.True(t, c.Send(headerAuth, body, []string{"session"}))
	assert.Equal(t, 3*time.Second, c.RetryAfter([]string{"session"}), "80 of 100 bytes queued")
	assert.False(t, c.Send(headerAuth, body, []string{"session"}), "120 > 100")
	s := c.Stats()
	assert.Equal(t, uint64(1), s.DroppedQueueFull, "%+v", s)
	assert.Equal(t, int64(80), s.QueuedBytes)
	checkInvariant(t, s)
	close(release)
	flush(t, c)
	assert.Zero(t, c.RetryAfter([]string{"session"}))
	s = c.Stats()
	assert.Equal(t, uint64(2), s.Sent)
	checkInvariant(t, s)
}

// Close sends what it can within its deadline, abandons the rest, counted,
// and stops its workers; Send after Close is refused.
func TestCloseAbandonsPastItsDeadline(t *testing.T) {
	release := make(chan struct{})
	up := newStandIn(t, func(w http.ResponseWriter) { <-release; w.WriteHeader(http.StatusOK) })
	defer close(release)
	u, _ := url.Parse(up.URL)
	c := New(u, WithWorkers(1))
	for range 3 {
		require.True(t, c.Send(headerAuth, []byte("{}\n"), []string{"session"}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, c.Close(ctx), context.Canceled)
	assert.NoError(t, c.Close(context.Background()), "a second Close")
	assert.False(t, c.Send(headerAuth, []byte("{}\n"), nil))
	s := c.Stats()
	assert.Equal(t, uint64(4), s.DroppedClosed, "%+v", s)
	assert.Zero(t, s.Pending)
	assert.Zero(t, s.QueuedBytes)
	checkInvariant(t, s)
}
