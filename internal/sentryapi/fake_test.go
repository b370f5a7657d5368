package sentryapi

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tracedup/tracedup/internal/sentryapitest"
)

const testToken = "sntrys_TEST-SECRET-TOKEN-0123456789"

// testNow is the fixed clock of these tests.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newFake(t *testing.T, h http.HandlerFunc) *sentryapitest.Server {
	t.Helper()
	return sentryapitest.New(t, testToken, h)
}

// simpleEvent is an item of the plain project event list, with our tags
// when tags are given.
func simpleEvent(id, issue string, at time.Time, typ, value string, hooked bool) map[string]any {
	return sentryapitest.SimpleEvent(sentryapitest.Event{
		ID: strings.Repeat("d", 32-len(id)) + id, Issue: issue, Project: "checkout", ProjectID: 7, Time: at,
		Type: typ, Value: value, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b7",
		Service: "checkout", Hooked: hooked,
	})
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
