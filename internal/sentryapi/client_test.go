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

	"github.com/tracedup/tracedup/internal/keys"
)

const eventsPath = "/api/0/projects/acme/checkout/events/"

// TestProjectEventsPaginatesThroughRateLimit reads three pages linked by
// cursors, with a 429 before the second page that the client waits out.
func TestProjectEventsPaginatesThroughRateLimit(t *testing.T) {
	s := newSleeper()
	reset := testNow.Add(7 * time.Second)
	var mu sync.Mutex
	served429 := false
	var f *fakeSentry
	f = newFakeSentry(t, func(w http.ResponseWriter, r *http.Request) {
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
			w.WriteHeader(http.StatusTooManyRequests)
			writeJSON(w, map[string]string{"detail": "You are attempting to use this endpoint too frequently. Limit is 60 requests in 60 seconds"})
			return
		}
		mu.Unlock()
		switch cursor {
		case "":
			w.Header().Set("Link", linkHeader(f.URL, eventsPath, "0:0:1", false, "0:100:0", true))
			writeJSON(w, []any{
				docEvent("c3", "300", testNow.Add(-1*time.Minute), "*main.PaymentDeclined: card declined", [2]string{keys.TagTraceID, "aa"}),
				docEvent("c2", "300", testNow.Add(-2*time.Minute), "*main.PaymentDeclined: card declined"),
			})
		case "0:100:0":
			w.Header().Set("Link", linkHeader(f.URL, eventsPath, "0:0:1", true, "0:200:0", true))
			writeJSON(w, []any{docEvent("b1", "200", testNow.Add(-3*time.Minute), "*errors.errorString: upstream 502")})
		case "0:200:0":
			w.Header().Set("Link", linkHeader(f.URL, eventsPath, "0:100:1", true, "0:300:0", false))
			writeJSON(w, []any{docEvent("a1", "100", testNow.Add(-4*time.Minute), "*errors.errorString: order failed")})
		default:
			t.Errorf("unexpected cursor %q", cursor)
			w.WriteHeader(http.StatusBadRequest)
		}
	})
	var progress []Progress
	c := newTestClient(t, f.URL, s, WithProgress(func(p Progress) { progress = append(progress, p) }))

	evs, err := c.Events(context.Background(), Query{Org: "acme", Projects: []string{"checkout"}, Start: testNow.Add(-time.Hour), Full: true})
	require.NoError(t, err)

	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.EventID
	}
	assert.Equal(t, []string{"a1", "b1", "c2", "c3"}, ids, "every page read, oldest first")
	assert.Equal(t, []time.Duration{7 * time.Second}, s.Waits(), "the 429 waited until X-Sentry-Rate-Limit-Reset")

	reqs := f.Requests()
	require.Len(t, reqs, 4, "three pages and one retry")
	var cursors []string
	for _, r := range reqs {
		cursors = append(cursors, r.URL.Query().Get("cursor"))
		assert.Equal(t, eventsPath, r.URL.Path)
		assert.Equal(t, "2026-03-01T11:00:00", r.URL.Query().Get("start"))
		assert.Equal(t, "2026-03-01T12:00:00", r.URL.Query().Get("end"))
		assert.Equal(t, "true", r.URL.Query().Get("full"))
		assert.Empty(t, r.URL.Query().Get("query"), "query= is a message substring on this endpoint, not a search")
	}
	assert.Equal(t, []string{"", "0:100:0", "0:100:0", "0:200:0"}, cursors)
	assert.Zero(t, f.badAuth, "every request carried the bearer token")

	require.Len(t, progress, 3)
	assert.Equal(t, Progress{Endpoint: "projects/acme/checkout/events", Pages: 3, Events: 4, RateLimitRemaining: 40, ConcurrentRemaining: 0}, progress[2])
	assert.Equal(t, 7*time.Second, progress[1].Waited)

	e := evs[3]
	assert.Equal(t, "300", e.GroupID)
	assert.Equal(t, "checkout", e.Project)
	assert.Equal(t, "error", e.Type)
	assert.Equal(t, testNow.Add(-time.Minute), e.DateCreated)
	v, ok := e.Tag(keys.TagTraceID)
	assert.True(t, ok)
	assert.Equal(t, "aa", v)
	v, _ = e.Tag("level")
	assert.Equal(t, "error", v, "tags are read as a list of key/value objects")
}

func TestRemainingZeroWaitsForReset(t *testing.T) {
	s := newSleeper()
	var f *fakeSentry
	f = newFakeSentry(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Sentry-Rate-Limit-Remaining", "0")
		w.Header().Set("X-Sentry-Rate-Limit-Reset", strconv.FormatInt(s.Now().Add(30*time.Second).Unix(), 10))
		if r.URL.Query().Get("cursor") == "" {
			w.Header().Set("Link", linkHeader(f.URL, eventsPath, "0:0:1", false, "0:100:0", true))
		}
		writeJSON(w, []any{})
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
		{"503 retried then given up", nil, 503, 2, []time.Duration{time.Second, 2 * time.Second}, ErrStatus},
		{"no retries", nil, 429, 0, nil, ErrRateLimited},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSleeper()
			f := newFakeSentry(t, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.headers {
					w.Header().Set(k, v)
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
// message says what to fix, and that the token is in none of them.
func TestErrors(t *testing.T) {
	tests := []struct {
		name     string
		handler  http.HandlerFunc
		org      bool // organisation-wide read
		want     error
		contains []string
	}{
		{
			name: "401",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusUnauthorized)
				writeJSON(w, map[string]string{"detail": "Invalid token"})
			},
			want: ErrUnauthorized, contains: []string{"401", "token rejected", "SENTRY_AUTH_TOKEN", `sentry says: "Invalid token"`},
		},
		{
			name: "403 project",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusForbidden)
				// A server that echoes the token back: redacted.
				writeJSON(w, map[string]string{"detail": "You do not have permission (" + testToken + ")"})
			},
			want: ErrForbidden, contains: []string{"403", "project:read", "[redacted]"},
		},
		{
			name: "403 organisation",
			org:  true,
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusForbidden)
			},
			want: ErrForbidden, contains: []string{"403", "event:read", "/api/0/organizations/acme/events/"},
		},
		{
			name: "404 wrong project",
			handler: func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/api/0/organizations/acme/" {
					writeJSON(w, map[string]string{"slug": "acme"})
					return
				}
				w.WriteHeader(http.StatusNotFound)
				writeJSON(w, map[string]string{"detail": "The requested resource does not exist"})
			},
			want: ErrNotFound, contains: []string{"404", `project "checkout" is likely wrong`, "-project"},
		},
		{
			name: "404 wrong organisation",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusNotFound)
			},
			want: ErrNotFound, contains: []string{"404", `organisation "acme" does not exist`, "-org"},
		},
		{
			name: "404 organisation-wide",
			org:  true,
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusNotFound)
			},
			want: ErrNotFound, contains: []string{"404", `organisation "acme"`},
		},
		{
			name: "malformed second page",
			handler: func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Query().Get("cursor") == "" {
					w.Header().Set("Link", `<http://x/>; rel="next"; results="true"; cursor="0:100:0"`)
					writeJSON(w, []any{docEvent("a1", "1", testNow.Add(-time.Minute), "boom")})
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
			name: "500",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusInternalServerError)
			},
			want: ErrStatus, contains: []string{"500"},
		},
		{
			name: "pagination loop",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Link", `<http://x/>; rel="next"; results="true"; cursor="0:100:0"`)
				writeJSON(w, []any{})
			},
			want: ErrPagination, contains: []string{"already read"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeSentry(t, tt.handler)
			c := newTestClient(t, f.URL, newSleeper(), WithMaxRetries(0))
			q := Query{Org: "acme", Projects: []string{"checkout"}, Start: testNow.Add(-time.Hour)}
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
	f := newFakeSentry(t, func(w http.ResponseWriter, r *http.Request) {})
	url := f.URL
	f.Close() // nothing listens any more
	c := newTestClient(t, url, newSleeper())
	_, err := c.Events(context.Background(), Query{Org: "acme", Projects: []string{"checkout"}, Start: testNow.Add(-time.Hour)})
	require.ErrorIs(t, err, ErrNetwork)
	assert.Contains(t, err.Error(), "no response from Sentry")
	assert.NotContains(t, err.Error(), testToken)
}

func TestContextCancelledWhileWaiting(t *testing.T) {
	f := newFakeSentry(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "60")
		w.WriteHeader(http.StatusTooManyRequests)
	})
	ctx, cancel := context.WithCancel(context.Background())
	c, err := New(f.URL, testToken, WithSleep(func(ctx context.Context, d time.Duration) error {
		cancel() // the user gives up during the wait
		return ctx.Err()
	}))
	require.NoError(t, err)
	_, err = c.ProjectEvents(ctx, "acme", "checkout", testNow.Add(-time.Hour), testNow, false)
	require.ErrorIs(t, err, context.Canceled)
	assert.Len(t, f.Requests(), 1, "no retry after cancellation")
}

func TestRealSleepHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, sleepCtx(ctx, time.Hour), context.Canceled)
}

// TestOneRequestInFlightPerEndpoint reads several projects at once: the
// handler holds each request until a second one arrives or a short while
// passes, so that two requests in flight would be seen.
func TestOneRequestInFlightPerEndpoint(t *testing.T) {
	var mu sync.Mutex
	arrival := make(chan struct{}) // closed and replaced at each arrival
	var f *fakeSentry
	f = newFakeSentry(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		close(arrival)
		arrival = make(chan struct{})
		next := arrival
		mu.Unlock()
		select {
		case <-next: // another request arrived while this one is in flight
		case <-time.After(20 * time.Millisecond):
		}
		if r.URL.Query().Get("cursor") == "" {
			w.Header().Set("Link", linkHeader(f.URL, r.URL.Path, "0:0:1", false, "0:100:0", true))
		}
		writeJSON(w, []any{})
	})
	c := newTestClient(t, f.URL, newSleeper())
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			_, err := c.ProjectEvents(context.Background(), "acme", fmt.Sprintf("svc%d", i), testNow.Add(-time.Hour), testNow, false)
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	assert.Len(t, f.Requests(), 8)
	f.mu.Lock()
	defer f.mu.Unlock()
	assert.Equal(t, 1, f.maxInflight[endpointProjectEvents], "requests in flight at once on the project events endpoint")
}

func TestOrganizationEvents(t *testing.T) {
	s := newSleeper()
	const path = "/api/0/organizations/acme/events/"
	var f *fakeSentry
	f = newFakeSentry(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		rows := []map[string]any{{
			"id": "e2", "issue.id": 300, "project": "payment", "event.type": "error",
			"title": "*main.PaymentDeclined: card declined", "message": "", "platform": "go",
			"timestamp": testNow.Add(-time.Minute).Format(time.RFC3339), "trace": "aa",
			"trace.span": "s2", "trace.parent_span": "s1",
			"error.type": []string{"*main.PaymentDeclined"}, "error.value": []string{"card declined"},
			"tags[otel.trace_id]": "aa", "tags[otel.span_id]": "s2", "tags[service.name]": "payment",
		}}
		if r.URL.Query().Get("cursor") == "" {
			w.Header().Set("Link", linkHeader(f.URL, path, "0:0:1", false, "0:100:0", true))
		} else {
			w.Header().Set("Link", linkHeader(f.URL, path, "0:0:1", true, "0:200:0", false))
			rows = []map[string]any{{
				"id": "e1", "issue.id": "100", "project": "gateway", "event.type": "error",
				"title": "upstream failed", "timestamp": "2026-03-01T11:58:00+00:00",
				"trace": "aa", "trace.span": "s0", "trace.parent_span": nil, "error.type": nil,
				"tags[otel.trace_id]": nil, "tags[otel.span_id]": nil, "tags[service.name]": "gateway",
			}}
		}
		writeJSON(w, map[string]any{"data": rows, "meta": map[string]any{"fields": map[string]string{"id": "string"}}})
	})
	c := newTestClient(t, f.URL, s)
	evs, err := c.Events(context.Background(), Query{Org: "acme", Start: testNow.Add(-24 * time.Hour)})
	require.NoError(t, err)
	require.Len(t, evs, 2)

	q := f.Requests()[0].URL.Query()
	assert.Equal(t, orgFields, q["field"])
	assert.Contains(t, q["field"], "tags[otel.trace_id]")
	assert.Equal(t, "-1", q.Get("project"), "all projects the token can see")
	assert.Equal(t, "event.type:error", q.Get("query"))
	assert.Equal(t, "100", q.Get("per_page"))
	assert.Equal(t, "2026-02-28T12:00:00", q.Get("start"))
	assert.Equal(t, "2026-03-01T12:00:00", q.Get("end"))
	assert.Equal(t, "0:100:0", f.Requests()[1].URL.Query().Get("cursor"))

	assert.Equal(t, Event{
		EventID: "e2", GroupID: "300", Project: "payment", Type: "error",
		Title: "*main.PaymentDeclined: card declined", Platform: "go", DateCreated: testNow.Add(-time.Minute),
		Tags: []Tag{
			{keys.TagTraceID, "aa"}, {keys.TagSpanID, "s2"}, {keys.TagServiceName, "payment"}, {keys.SentryTraceTag, "aa"},
		},
		Trace:         TraceContext{TraceID: "aa", SpanID: "s2", ParentSpanID: "s1"},
		ExceptionType: "*main.PaymentDeclined", ExceptionValue: "card declined",
	}, evs[1])
	assert.Equal(t, "100", evs[0].GroupID, "issue.id as a string or a number")
	assert.Equal(t, []Tag{{keys.TagServiceName, "gateway"}, {keys.SentryTraceTag, "aa"}}, evs[0].Tags)
}

func TestProjectEventsFiltering(t *testing.T) {
	var f *fakeSentry
	f = newFakeSentry(t, func(w http.ResponseWriter, r *http.Request) {
		msg := docEvent("m1", "9", testNow.Add(-time.Minute), "a message")
		msg["event.type"] = "default"
		full := docEvent("f1", "8", testNow.Add(-2*time.Minute), "*main.Outer: wrapped")
		delete(full, "event.type")
		full["type"] = "error"
		full["metadata"] = map[string]any{"type": "*main.Meta", "value": "meta value"}
		full["contexts"] = map[string]any{"trace": map[string]any{"trace_id": "tt", "span_id": "s2", "parent_span_id": "s1", "op": "http.server"}}
		full["entries"] = []any{
			map[string]any{"type": "breadcrumbs", "data": map[string]any{"values": []any{}}},
			map[string]any{"type": "exception", "data": map[string]any{"values": []any{
				map[string]any{"type": "*main.Inner", "value": "inner"},
				map[string]any{"type": "*main.Outer", "value": "wrapped"},
			}}},
		}
		old := docEvent("o1", "7", testNow.Add(-2*time.Hour), "too old")
		w.Header().Set("Link", linkHeader(f.URL, eventsPath, "0:0:1", false, "0:100:0", true))
		if r.URL.Query().Get("cursor") != "" {
			writeJSON(w, []any{old}) // a page entirely before start: reading stops
			return
		}
		writeJSON(w, []any{msg, full, old})
	})
	c := newTestClient(t, f.URL, newSleeper())
	evs, err := c.ProjectEvents(context.Background(), "acme", "checkout", testNow.Add(-time.Hour), testNow, true)
	require.NoError(t, err)
	require.Len(t, evs, 1, "the message event and the event before start are dropped")
	e := evs[0]
	assert.Equal(t, "f1", e.EventID)
	assert.Equal(t, TraceContext{TraceID: "tt", SpanID: "s2", ParentSpanID: "s1"}, e.Trace)
	assert.Equal(t, "*main.Outer", e.ExceptionType, "the outermost exception of the entries")
	assert.Equal(t, "wrapped", e.ExceptionValue)
	assert.Len(t, f.Requests(), 2, "stopped after a page older than start")
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
