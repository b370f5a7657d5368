package sentryapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tracedup/tracedup/internal/sentryapitest"
)

const eventsPath = "/api/0/projects/acme/checkout/events/"

// TestProjectEventsPaginatesThroughRateLimit reads three pages linked by
// cursors, with a 429 before the second page that the client waits out.
func TestProjectEventsPaginatesThroughRateLimit(t *testing.T) {
	s := newSleeper()
	reset := testNow.Add(7 * time.Second)
	var mu sync.Mutex
	served429 := false
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Sentry-Rate-Limit-Limit", "60")
		w.Header().Set("X-Sentry-Rate-Limit-Remaining", "40")
		w.Header().Set("X-Sentry-Rate-Limit-Reset", strconv.FormatInt(reset.Unix(), 10))
		w.Header().Set("X-Sentry-Rate-Limit-ConcurrentRemaining", "0")
		cursor := r.URL.Query().Get("cursor")
		mu.Lock()
		if cursor == "0:100:0" && !served429 {
			served429 = true
			mu.Unlock()
			w.Header().Set("X-Sentry-Rate-Limit-Remaining", "0")
			sentryapitest.RateLimited(w, 60, 60)
			return
		}
		mu.Unlock()
		base := "http://" + r.Host
		switch cursor {
		case "":
			w.Header().Set("Link", sentryapitest.Link(base, eventsPath, "0:0:1", false, "0:100:0", true))
			sentryapitest.WriteJSON(w, []any{
				simpleEvent("c3", "300", testNow.Add(-1*time.Minute), "*main.PaymentDeclined", "card declined", true),
				simpleEvent("c2", "300", testNow.Add(-2*time.Minute), "*main.PaymentDeclined", "card declined", false),
			})
		case "0:100:0":
			w.Header().Set("Link", sentryapitest.Link(base, eventsPath, "0:0:1", true, "0:200:0", true))
			sentryapitest.WriteJSON(w, []any{simpleEvent("b1", "200", testNow.Add(-3*time.Minute), "*errors.errorString", "upstream 502", false)})
		case "0:200:0":
			w.Header().Set("Link", sentryapitest.Link(base, eventsPath, "0:100:1", true, "0:300:0", false))
			sentryapitest.WriteJSON(w, []any{simpleEvent("a1", "100", testNow.Add(-4*time.Minute), "*errors.errorString", "order failed", false)})
		default:
			t.Errorf("unexpected cursor %q", cursor)
			w.WriteHeader(http.StatusBadRequest)
		}
	})
	var progress []Progress
	c := newTestClient(t, f.URL, s, WithProgress(func(p Progress) { progress = append(progress, p) }))

	evs, err := c.Events(context.Background(), Query{Org: "acme", Projects: []string{"checkout"}, Start: testNow.Add(-time.Hour), Read: ReadTags})
	require.NoError(t, err)

	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = strings.TrimLeft(e.EventID, "d")
	}
	assert.Equal(t, []string{"a1", "b1", "c2", "c3"}, ids, "every page read, oldest first")
	assert.Equal(t, []time.Duration{7 * time.Second}, s.Waits(), "the 429 waited until X-Sentry-Rate-Limit-Reset, once")

	reqs := f.Requests()
	require.Len(t, reqs, 4, "three pages and one retry")
	var cursors []string
	for _, r := range reqs {
		cursors = append(cursors, r.URL.Query().Get("cursor"))
		assert.Equal(t, eventsPath, r.URL.Path)
		assert.Equal(t, "2026-03-01T11:00:00", r.URL.Query().Get("start"))
		assert.Equal(t, "2026-03-01T12:00:00", r.URL.Query().Get("end"))
		assert.Empty(t, r.URL.Query().Get("full"), "-read tags asks for the plain list")
		assert.Empty(t, r.URL.Query().Get("query"), "query= is a message substring on this endpoint, not a search")
	}
	assert.Equal(t, []string{"", "0:100:0", "0:100:0", "0:200:0"}, cursors)

	require.Len(t, progress, 3)
	assert.Equal(t, Progress{Endpoint: "projects/acme/checkout/events", Read: ReadTags.describe(), Pages: 3, Events: 4, RateLimitRemaining: 40, ConcurrentRemaining: 0}, progress[2])
	assert.Equal(t, 7*time.Second, progress[1].Waited)

	e := evs[3]
	assert.Equal(t, "300", e.GroupID)
	assert.Equal(t, "checkout", e.Project)
	assert.Equal(t, "error", e.Type)
	assert.Equal(t, testNow.Add(-time.Minute), e.DateCreated)
	assert.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", e.TraceID(), "from our tag")
	v, _ := e.Tag("level")
	assert.Equal(t, "error", v, "tags are read as a list of key/value objects")
	assert.Empty(t, evs[2].TraceID(), "the plain list has no contexts.trace: an event without our tag has no trace id")
}

func TestRemainingZeroWaitsForReset(t *testing.T) {
	s := newSleeper()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Sentry-Rate-Limit-Remaining", "0")
		w.Header().Set("X-Sentry-Rate-Limit-Reset", strconv.FormatInt(s.Now().Add(30*time.Second).Unix(), 10))
		if r.URL.Query().Get("cursor") == "" {
			w.Header().Set("Link", sentryapitest.Link("http://"+r.Host, eventsPath, "0:0:1", false, "0:100:0", true))
		}
		sentryapitest.WriteJSON(w, []any{})
	})
	c := newTestClient(t, f.URL, s)
	_, err := c.ProjectEvents(context.Background(), "acme", "checkout", testNow.Add(-time.Hour), testNow, false)
	require.NoError(t, err)
	assert.Equal(t, []time.Duration{30 * time.Second}, s.Waits(), "the second page waited for the window to reset")
	assert.Len(t, f.Requests(), 2)
}

func TestRetryBackoff(t *testing.T) {
	tests := []struct {
		name    string
		headers map[string]string
		status  int
		retries int
		want    []time.Duration
		wantErr error
	}{
		{"no reset: capped exponential backoff", nil, 429, 6,
			[]time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}, ErrRateLimited},
		{"Retry-After seconds", map[string]string{"Retry-After": "3"}, 429, 2, []time.Duration{3 * time.Second, 3 * time.Second}, ErrRateLimited},
		{"Retry-After HTTP date", map[string]string{"Retry-After": testNow.Add(5 * time.Second).Format(http.TimeFormat)}, 429, 1, []time.Duration{5 * time.Second}, ErrRateLimited},
		{"reset far away is capped", map[string]string{"X-Sentry-Rate-Limit-Reset": strconv.FormatInt(testNow.Add(24*time.Hour).Unix(), 10)}, 429, 1, []time.Duration{10 * time.Second}, ErrRateLimited},
		// Sentry's own 429: the window is spent and resets far ahead. The
		// retry's wait and the spent window are one wait, capped once.
		{"spent window far away is waited once", map[string]string{"X-Sentry-Rate-Limit-Remaining": "0", "X-Sentry-Rate-Limit-Reset": strconv.FormatInt(testNow.Add(24*time.Hour).Unix(), 10)}, 429, 1, []time.Duration{10 * time.Second}, ErrRateLimited},
		{"no rate-limit headers (self-hosted)", nil, 429, 2, []time.Duration{time.Second, 2 * time.Second}, ErrRateLimited},
		{"503 retried then given up", nil, 503, 2, []time.Duration{time.Second, 2 * time.Second}, ErrStatus},
		{"no retries", nil, 429, 0, nil, ErrRateLimited},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSleeper()
			f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.headers {
					w.Header().Set(k, v)
				}
				if tt.status == http.StatusTooManyRequests {
					sentryapitest.RateLimited(w, 60, 60)
					return
				}
				w.WriteHeader(tt.status)
			})
			// A sleep that does not move the clock, so that the announced
			// times stay ahead and the waits are exactly what was announced.
			c, err := New(f.URL, testToken, WithClock(func() time.Time { return testNow }),
				WithSleep(func(ctx context.Context, d time.Duration) error {
					s.mu.Lock()
					s.waits = append(s.waits, d)
					s.mu.Unlock()
					return nil
				}),
				WithMaxRetries(tt.retries), WithBackoff(time.Second, 10*time.Second))
			require.NoError(t, err)
			_, err = c.ProjectEvents(context.Background(), "acme", "checkout", testNow.Add(-time.Hour), testNow, false)
			require.ErrorIs(t, err, tt.wantErr)
			assert.Equal(t, tt.want, s.Waits())
			assert.Len(t, f.Requests(), tt.retries+1)
			assert.NotContains(t, err.Error(), testToken)
		})
	}
}

// TestErrors drives every failure path and checks the sentinel, that the
// message says what to fix, and that the token is in none of them. The
// bodies are the ones Sentry sends.
func TestErrors(t *testing.T) {
	orgPath := "/api/0/organizations/acme/"
	tests := []struct {
		name     string
		handler  http.HandlerFunc
		read     Read
		org      bool // organisation-wide read
		want     error
		contains []string
	}{
		{
			name: "401",
			handler: func(w http.ResponseWriter, r *http.Request) {
				sentryapitest.Detail(w, http.StatusUnauthorized, "Invalid token")
			},
			read: ReadFull, want: ErrUnauthorized, contains: []string{"401", "token rejected", "SENTRY_AUTH_TOKEN", "personal token", `sentry says: "Invalid token"`},
		},
		{
			name: "403 project",
			handler: func(w http.ResponseWriter, r *http.Request) {
				// A server that echoes the token back: redacted.
				sentryapitest.Detail(w, http.StatusForbidden, "You do not have permission ("+testToken+")")
			},
			read: ReadFull, want: ErrForbidden, contains: []string{"403", "project:read", "Organization Auth Token", "[redacted]"},
		},
		{
			name:    "403 organisation",
			org:     true,
			handler: func(w http.ResponseWriter, r *http.Request) { sentryapitest.Forbidden(w) },
			want:    ErrForbidden, contains: []string{"403", "org:read", "/api/0/organizations/acme/events/", sentryapitest.ForbiddenDetail},
		},
		{
			name: "404 wrong project",
			handler: func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == orgPath {
					sentryapitest.WriteJSON(w, map[string]string{"slug": "acme"})
					return
				}
				sentryapitest.NotFound(w)
			},
			read: ReadFull, want: ErrNotFound, contains: []string{"404", `project "checkout" is likely wrong`, "-project"},
		},
		{
			name:    "404 wrong organisation",
			handler: func(w http.ResponseWriter, r *http.Request) { sentryapitest.NotFound(w) },
			read:    ReadFull, want: ErrNotFound, contains: []string{"404", `organisation "acme" does not exist`, "-org"},
		},
		{
			name:    "404 organisation-wide",
			org:     true,
			handler: func(w http.ResponseWriter, r *http.Request) { sentryapitest.NotFound(w) },
			want:    ErrNotFound, contains: []string{"404", `organisation "acme" does not exist`},
		},
		{
			name:    "bare 404: no Discover",
			org:     true,
			read:    ReadDiscover,
			handler: func(w http.ResponseWriter, r *http.Request) { sentryapitest.NoDiscover(w) },
			want:    ErrNotFound, contains: []string{"404", "no Discover"},
		},
		{
			name:    "429 body is a bare string",
			read:    ReadFull,
			handler: func(w http.ResponseWriter, r *http.Request) { sentryapitest.RateLimited(w, 60, 60) },
			want:    ErrRateLimited, contains: []string{"429", `sentry says: "You are attempting to use this endpoint too frequently. Limit is 60 requests in 60 seconds"`},
		},
		{
			name: "malformed second page",
			read: ReadFull,
			handler: func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Query().Get("cursor") == "" {
					w.Header().Set("Link", `<http://x/>; rel="next"; results="true"; cursor="0:100:0"`)
					sentryapitest.WriteJSON(w, []any{simpleEvent("a1", "1", testNow.Add(-time.Minute), "E", "boom", false)})
					return
				}
				_, _ = w.Write([]byte(`[{"eventID": "b1", "tags": {"otel.trace_id": "x"}}]`)) // tags as a dict
			},
			want: ErrMalformed, contains: []string{"page 2", "malformed response body"},
		},
		{
			name: "malformed organisation page",
			org:  true,
			handler: func(w http.ResponseWriter, r *http.Request) {
				_, _ = w.Write([]byte(`<html>gateway</html>`))
			},
			want: ErrMalformed, contains: []string{"page 1", "malformed"},
		},
		{
			name:    "500",
			read:    ReadFull,
			handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) },
			want:    ErrStatus, contains: []string{"500"},
		},
		{
			name: "pagination loop",
			read: ReadFull,
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Link", `<http://x/>; rel="next"; results="true"; cursor="0:100:0"`)
				sentryapitest.WriteJSON(w, []any{})
			},
			want: ErrPagination, contains: []string{"already read"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, tt.handler)
			c := newTestClient(t, f.URL, newSleeper(), WithMaxRetries(0))
			q := Query{Org: "acme", Projects: []string{"checkout"}, Start: testNow.Add(-time.Hour), Read: tt.read}
			if tt.org {
				q.Projects = nil
			}
			_, err := c.Events(context.Background(), q)
			require.ErrorIs(t, err, tt.want)
			var apiErr *Error
			require.ErrorAs(t, err, &apiErr)
			for _, s := range tt.contains {
				assert.Contains(t, err.Error(), s)
			}
			assert.NotContains(t, err.Error(), testToken)
			assert.NotContains(t, fmt.Sprintf("%+v %#v", err, err), testToken)
		})
	}
}

func TestNetworkError(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {})
	url := f.URL
	f.Close() // nothing listens any more
	c := newTestClient(t, url, newSleeper())
	_, err := c.Events(context.Background(), Query{Org: "acme", Projects: []string{"checkout"}, Start: testNow.Add(-time.Hour), Read: ReadFull})
	require.ErrorIs(t, err, ErrNetwork)
	assert.Contains(t, err.Error(), "no response from Sentry")
	assert.NotContains(t, err.Error(), testToken)
}

func TestContextCancelledWhileWaiting(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "60")
		sentryapitest.RateLimited(w, 60, 60)
	})
	ctx, cancel := context.WithCancel(context.Background())
	c, err := New(f.URL, testToken, WithSleep(func(ctx context.Context, d time.Duration) error {
		cancel() // the user gives up during the wait
		return ctx.Err()
	}))
	require.NoError(t, err)
	_, err = c.ProjectEvents(ctx, "acme", "checkout", testNow.Add(-time.Hour), testNow, false)
	require.ErrorIs(t, err, context.Canceled)
	assert.NotErrorIs(t, err, ErrNetwork, "a cancelled wait is no network trouble")
	assert.Len(t, f.Requests(), 1, "no retry after cancellation")
}

// TestContextCancelledAtTheGate cancels a read queued behind another request
// to the same endpoint: it reports the context's error and sends nothing.
func TestContextCancelledAtTheGate(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) { sentryapitest.WriteJSON(w, []any{}) })
	c := newTestClient(t, f.URL, newSleeper())
	c.gateFor(endpointProjectEvents).sem <- struct{}{} // a request in flight
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.ProjectEvents(ctx, "acme", "checkout", testNow.Add(-time.Hour), testNow, false)
	require.ErrorIs(t, err, context.Canceled)
	assert.NotErrorIs(t, err, ErrNetwork)
	assert.Contains(t, err.Error(), "interrupted while waiting for another request")
	assert.Empty(t, f.Requests())
}

func TestRealSleepHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, sleepCtx(ctx, time.Hour), context.Canceled)
}

func TestNew(t *testing.T) {
	for _, tt := range []struct{ url, token, want string }{
		{"https://sentry.io", "", "no auth token"},
		{"sentry.io", "t", "want http(s)://host"},
		{"ftp://sentry.io", "t", "want http(s)://host"},
		{"https://user:pw@sentry.io", "t", "credentials"},
	} {
		_, err := New(tt.url, tt.token)
		require.Error(t, err, tt.url)
		assert.Contains(t, err.Error(), tt.want)
	}
	c, err := New("https://sentry.example.com/sub/", "t")
	require.NoError(t, err)
	assert.Equal(t, "https://sentry.example.com/sub/api/0/x/?cursor=0%3A1%3A0", c.urlFor(request{path: "/api/0/x/", cursor: "0:1:0"}))
}

func TestQueryValidation(t *testing.T) {
	c, err := New("https://sentry.invalid", testToken, WithClock(func() time.Time { return testNow }))
	require.NoError(t, err)
	for _, q := range []Query{{}, {Org: "acme"}, {Org: "acme", Start: testNow.Add(time.Hour)}} {
		_, err := c.Events(context.Background(), q)
		assert.Error(t, err, "%+v", q)
	}
}

func TestErrorUnwrap(t *testing.T) {
	c, err := New("https://sentry.invalid", "tok-secret")
	require.NoError(t, err)
	r := request{path: "/api/0/projects/tok-secret/x/events/"}
	err = c.errorf(r, ErrNetwork, 0, "hint tok-secret", context.DeadlineExceeded)
	assert.True(t, errors.Is(err, ErrNetwork))
	assert.True(t, errors.Is(err, context.DeadlineExceeded))
	err = c.errorf(r, ErrNetwork, 0, "", errors.New("echo tok-secret"))
	assert.True(t, errors.Is(err, ErrNetwork))
	assert.False(t, strings.Contains(fmt.Sprintf("%#v %v", err, err), "tok-secret"), "%#v", err)
}
