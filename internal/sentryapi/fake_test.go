package sentryapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const testToken = "sntrys_TEST-SECRET-TOKEN-0123456789"

// testNow is the fixed clock of these tests.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// docEvent is one item of "List a Project's Error Events" in the shape of
// the documented example response, with our tags.
func docEvent(eventID, groupID string, at time.Time, title string, tags ...[2]string) map[string]any {
	tagList := []map[string]any{
		{"key": "environment", "value": "production"},
		{"value": "error", "key": "level"},
	}
	for _, t := range tags {
		tagList = append(tagList, map[string]any{"key": t[0], "value": t[1]})
	}
	return map[string]any{
		"eventID":     eventID,
		"tags":        tagList,
		"dateCreated": at.UTC().Format(time.RFC3339),
		"user":        nil,
		"message":     "",
		"title":       title,
		"id":          strings.Repeat("d", 32-len(eventID)) + eventID,
		"platform":    "go",
		"event.type":  "error",
		"groupID":     groupID,
		"crashFile":   nil,
		"location":    "main.go:42",
		"culprit":     "main.handler",
		"projectID":   "49271",
		"metadata":    nil,
	}
}

// linkHeader writes Sentry's Link header for a page: previous and next, each
// with results and cursor, as in https://docs.sentry.io/api/pagination/.
func linkHeader(base, path, prev string, prevResults bool, next string, nextResults bool) string {
	return fmt.Sprintf(`<%s%s?&cursor=%s>; rel="previous"; results="%t"; cursor="%s", <%s%s?&cursor=%s>; rel="next"; results="%t"; cursor="%s"`,
		base, path, prev, prevResults, prev, base, path, next, nextResults, next)
}

// fakeSentry is an httptest server that checks the token, records requests
// and counts requests in flight per path prefix.
type fakeSentry struct {
	*httptest.Server
	handler http.Handler

	mu          sync.Mutex
	requests    []*http.Request
	inflight    map[string]int
	maxInflight map[string]int
	badAuth     int
}

func newFakeSentry(t *testing.T, h http.HandlerFunc) *fakeSentry {
	t.Helper()
	f := &fakeSentry{handler: h, inflight: map[string]int{}, maxInflight: map[string]int{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

// endpointOf names a request's route the way the client's gates do.
func endpointOf(path string) string {
	switch {
	case strings.HasPrefix(path, "/api/0/projects/") && strings.HasSuffix(path, "/events/"):
		return endpointProjectEvents
	case strings.HasPrefix(path, "/api/0/organizations/") && strings.HasSuffix(path, "/events/"):
		return endpointOrgEvents
	}
	return path
}

func (f *fakeSentry) serve(w http.ResponseWriter, r *http.Request) {
	ep := endpointOf(r.URL.Path)
	f.mu.Lock()
	f.requests = append(f.requests, r.Clone(context.Background()))
	f.inflight[ep]++
	f.maxInflight[ep] = max(f.maxInflight[ep], f.inflight[ep])
	if r.Header.Get("Authorization") != "Bearer "+testToken {
		f.badAuth++
	}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inflight[ep]--
		f.mu.Unlock()
	}()
	f.handler.ServeHTTP(w, r)
}

func (f *fakeSentry) Requests() []*http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*http.Request(nil), f.requests...)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// sleeper is an injected sleep that records the waits and returns at once,
// moving the fake clock on by the wait.
type sleeper struct {
	mu    sync.Mutex
	now   time.Time
	waits []time.Duration
}

func newSleeper() *sleeper { return &sleeper{now: testNow} }

func (s *sleeper) Sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waits = append(s.waits, d)
	s.now = s.now.Add(d)
	return ctx.Err()
}

func (s *sleeper) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now
}

func (s *sleeper) Waits() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.waits...)
}

func newTestClient(t *testing.T, url string, s *sleeper, opts ...Option) *Client {
	t.Helper()
	c, err := New(url, testToken, append([]Option{WithSleep(s.Sleep), WithClock(s.Now)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
