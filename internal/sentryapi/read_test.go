package sentryapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tracedup/tracedup/internal/keys"
	"github.com/tracedup/tracedup/internal/sentryapitest"
)

// twoServices is a failed request through gateway -> legacy: legacy does not
// run tracedup's hook, so its event carries contexts.trace and no tags of
// ours.
func twoServices(at time.Time) []sentryapitest.Event {
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	return []sentryapitest.Event{
		{ID: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1", Issue: "100", Project: "gateway", ProjectID: 1, Time: at.Add(20 * time.Millisecond),
			Type: "*main.DownstreamError", Value: "legacy: 502", TraceID: trace, SpanID: "00f067aa0ba90201", Service: "gateway", Hooked: true},
		{ID: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa2", Issue: "200", Project: "legacy", ProjectID: 2, Time: at,
			Type: "TimeoutError", Value: "db timed out", TraceID: trace, SpanID: "00f067aa0ba90202", Parent: "00f067aa0ba90201"},
	}
}

func asItems[T any](evs []sentryapitest.Event, f func(sentryapitest.Event) T) []any {
	out := make([]any, 0, len(evs))
	for _, e := range evs {
		out = append(out, f(e))
	}
	return out
}

// where returns the events keep keeps.
func where(evs []sentryapitest.Event, keep func(sentryapitest.Event) bool) []sentryapitest.Event {
	var out []sentryapitest.Event
	for _, e := range evs {
		if keep(e) {
			out = append(out, e)
		}
	}
	return out
}

// find returns the event of project p.
func find(t *testing.T, evs []Event, p string) Event {
	t.Helper()
	for _, e := range evs {
		if e.Project == p {
			return e
		}
	}
	t.Fatalf("no event of project %q in %+v", p, evs)
	return Event{}
}

func projectList(w http.ResponseWriter, r *http.Request) {
	sentryapitest.Pages(w, r, []any{sentryapitest.ProjectItem("gateway", 1), sentryapitest.ProjectItem("legacy", 2)}, 100, nil)
}

// newOrgFake serves twoServices' project list and hands every other request
// to h.
func newOrgFake(t *testing.T, h http.HandlerFunc) *sentryapitest.Server {
	return newFake(t, func(w http.ResponseWriter, r *http.Request) {
		if sentryapitest.Route(r.URL.Path) == "organizations/{org}/projects" {
			projectList(w, r)
			return
		}
		h(w, r)
	})
}

func TestDiscoverFindsTraceIDsWithoutOurTags(t *testing.T) {
	evs := twoServices(testNow.Add(-time.Minute))
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "/api/0/organizations/acme/events/", r.URL.Path)
		sentryapitest.Pages(w, r, asItems(evs, sentryapitest.DiscoverRow), 1, sentryapitest.DiscoverBody)
	})
	var reads []string
	c := newTestClient(t, f.URL, newSleeper(), WithProgress(func(p Progress) { reads = append(reads, p.Read) }))
	got, err := c.Events(context.Background(), Query{Org: "acme", Start: testNow.Add(-time.Hour)})
	require.NoError(t, err)
	require.Len(t, got, 2)

	q := f.Requests()[0].URL.Query()
	assert.Equal(t, orgFields, q["field"])
	assert.Contains(t, q["field"], "platform.name", "platform is no Discover field")
	assert.NotContains(t, q["field"], "platform")
	assert.Subset(t, q["field"], []string{"trace", "trace.span", "trace.parent_span"})
	assert.Equal(t, []string{"-1"}, q["project"], "all projects the token can see")
	assert.Equal(t, "event.type:error", q.Get("query"))
	assert.Equal(t, "100", q.Get("per_page"))
	assert.Equal(t, []string{ReadDiscover.describe(), ReadDiscover.describe()}, reads, "the progress line says which read")

	legacy := find(t, got, "legacy")
	assert.Equal(t, "200", legacy.GroupID, "issue.id comes as a number")
	assert.Empty(t, legacy.Tags, "no tags of ours")
	assert.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", legacy.TraceID(), "from the trace column")
	assert.Equal(t, "00f067aa0ba90202", legacy.SpanID())
	assert.Equal(t, "00f067aa0ba90201", legacy.ParentSpanID())
	assert.Equal(t, "go", legacy.Platform)
	typ, msg := legacy.Exception()
	assert.Equal(t, "TimeoutError", typ, "the outermost of error.type")
	assert.Equal(t, "db timed out", msg)
	assert.Equal(t, find(t, got, "gateway").TraceID(), legacy.TraceID(), "both services' errors in one trace")
}

func TestDiscoverProjectByProjectWithoutGlobalViews(t *testing.T) {
	evs := twoServices(testNow.Add(-time.Minute))
	f := newOrgFake(t, func(w http.ResponseWriter, r *http.Request) {
		switch sentryapitest.Route(r.URL.Path) {
		case "organizations/{org}/events":
			ids := r.URL.Query()["project"]
			if len(ids) != 1 || ids[0] == "-1" {
				sentryapitest.MultipleProjects(w)
				return
			}
			mine := where(evs, func(e sentryapitest.Event) bool { return fmt.Sprint(e.ProjectID) == ids[0] })
			sentryapitest.Pages(w, r, asItems(mine, sentryapitest.DiscoverRow), 100, sentryapitest.DiscoverBody)
		default:
			sentryapitest.NotFound(w)
		}
	})
	var notes []string
	c := newTestClient(t, f.URL, newSleeper(), WithNotice(func(s string) { notes = append(notes, s) }))
	got, err := c.Events(context.Background(), Query{Org: "acme", Start: testNow.Add(-time.Hour), Read: ReadDiscover})
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Len(t, notes, 1)
	assert.Contains(t, notes[0], "You cannot view events from multiple projects")
	assert.Contains(t, notes[0], "project by project")
}

func TestAutoReadsFullEventsWithoutDiscover(t *testing.T) {
	evs := twoServices(testNow.Add(-time.Minute))
	f := newOrgFake(t, func(w http.ResponseWriter, r *http.Request) {
		switch sentryapitest.Route(r.URL.Path) {
		case "organizations/{org}/events":
			sentryapitest.NoDiscover(w)
		case "projects/{org}/{project}/events":
			if r.URL.Query().Get("full") != "true" {
				t.Errorf("want full events, got %s", r.URL)
			}
			mine := where(evs, func(e sentryapitest.Event) bool { return strings.Contains(r.URL.Path, "/"+e.Project+"/") })
			sentryapitest.Pages(w, r, asItems(mine, sentryapitest.FullEvent), 10, nil)
		default:
			sentryapitest.NotFound(w)
		}
	})
	var notes, reads []string
	c := newTestClient(t, f.URL, newSleeper(), WithNotice(func(s string) { notes = append(notes, s) }),
		WithProgress(func(p Progress) { reads = append(reads, p.Read) }))
	got, err := c.Events(context.Background(), Query{Org: "acme", Start: testNow.Add(-time.Hour)})
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Len(t, notes, 1)
	assert.Contains(t, notes[0], "no Discover")
	assert.Equal(t, []string{ReadFull.describe(), ReadFull.describe()}, reads)
	legacy := find(t, got, "legacy")
	assert.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", legacy.TraceID(), "from contexts.trace")
	assert.Equal(t, "00f067aa0ba90201", legacy.ParentSpanID())
	typ, _ := legacy.Exception()
	assert.Equal(t, "TimeoutError", typ, "the outermost exception entry")
}

func TestAutoReadsFullEventsWithoutOrgRead(t *testing.T) {
	evs := twoServices(testNow.Add(-time.Minute))
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		if sentryapitest.Route(r.URL.Path) != "projects/{org}/{project}/events" {
			sentryapitest.Forbidden(w) // a token with project:read only
			return
		}
		sentryapitest.Pages(w, r, asItems(evs[1:], sentryapitest.FullEvent), 10, nil)
	})
	var notes []string
	c := newTestClient(t, f.URL, newSleeper(), WithNotice(func(s string) { notes = append(notes, s) }))
	got, err := c.Events(context.Background(), Query{Org: "acme", Projects: []string{"legacy"}, Start: testNow.Add(-time.Hour)})
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Len(t, notes, 1)
	assert.Contains(t, notes[0], "org:read")
	assert.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", got[0].TraceID())
}

func TestTagsReadWarnsItCannotSeeTraceIDs(t *testing.T) {
	evs := twoServices(testNow.Add(-time.Minute))
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		sentryapitest.Pages(w, r, asItems(evs, sentryapitest.SimpleEvent), 100, nil)
	})
	var notes []string
	c := newTestClient(t, f.URL, newSleeper(), WithNotice(func(s string) { notes = append(notes, s) }))
	got, err := c.Events(context.Background(), Query{Org: "acme", Projects: []string{"x"}, Start: testNow.Add(-time.Hour), Read: ReadTags})
	require.NoError(t, err)
	require.Len(t, notes, 1)
	assert.Contains(t, notes[0], "only events tagged by tracedup's hook")
	require.Len(t, got, 2)
	assert.Empty(t, got[0].TraceID(), "the event without our tag has no trace id on this read")
	assert.NotEmpty(t, got[1].TraceID())
}

func TestNamedProjectUnknown(t *testing.T) {
	f := newFake(t, projectList)
	c := newTestClient(t, f.URL, newSleeper())
	_, err := c.Events(context.Background(), Query{Org: "acme", Projects: []string{"nosuch"}, Start: testNow.Add(-time.Hour)})
	require.ErrorIs(t, err, ErrNotFound)
	assert.Contains(t, err.Error(), `project "nosuch" is not among the 2 projects`)
}

// TestTokenStaysWithTheBaseURL follows redirects: to the base URL's own
// origin the token goes along; to the same host on another port (another
// origin, which net/http would trust) it does not.
func TestTokenStaysWithTheBaseURL(t *testing.T) {
	var mu sync.Mutex
	var leaked []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		leaked = append(leaked, r.Header.Get("Authorization"))
		mu.Unlock()
		sentryapitest.WriteJSON(w, []any{})
	}))
	t.Cleanup(other.Close)
	base := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("hop") == "" {
			http.Redirect(w, r, r.URL.Path+"?hop=1&"+r.URL.RawQuery, http.StatusFound) // same origin
			return
		}
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusFound) // same host, other port
	})
	require.Equal(t, strings.Split(base.Listener.Addr().String(), ":")[0], strings.Split(other.Listener.Addr().String(), ":")[0])
	c := newTestClient(t, base.URL, newSleeper())
	_, err := c.ProjectEvents(context.Background(), "acme", "checkout", testNow.Add(-time.Hour), testNow, false)
	require.NoError(t, err)
	require.Len(t, base.Requests(), 2, "the same-origin hop kept the token (the fake answers 401 without it)")
	assert.Equal(t, []string{""}, leaked, "no Authorization header off the base URL's origin")
}

func TestOrigin(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		same bool
	}{
		{"https://sentry.io/api/", "https://sentry.io:443/x", true},
		{"https://sentry.io", "http://sentry.io", false},
		{"http://127.0.0.1:8000", "http://127.0.0.1:8001", false},
		{"https://Sentry.IO", "https://sentry.io", true},
	} {
		a, _ := url.Parse(tt.a)
		b, _ := url.Parse(tt.b)
		assert.Equal(t, tt.same, origin(a) == origin(b), "%s vs %s", tt.a, tt.b)
	}
}

// heldTransport holds every request until released and counts how many are
// in flight at once.
type heldTransport struct {
	release chan struct{}

	mu            sync.Mutex
	inflight, max int
}

func (h *heldTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	h.mu.Lock()
	h.inflight++
	h.max = max(h.max, h.inflight)
	h.mu.Unlock()
	<-h.release
	h.mu.Lock()
	h.inflight--
	h.mu.Unlock()
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("[]")), Request: r}, nil
}

// TestOneRequestInFlightPerEndpoint reads four projects at once. In a
// synctest bubble, synctest.Wait returns when every reader is blocked: either
// in the transport or at the gate, so a second request in flight would be
// counted, with no timer to wait out.
func TestOneRequestInFlightPerEndpoint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &heldTransport{release: make(chan struct{})}
		c, err := New("https://sentry.invalid", testToken, WithHTTPClient(&http.Client{Transport: h}),
			WithClock(func() time.Time { return testNow }))
		require.NoError(t, err)
		const readers = 4
		var wg sync.WaitGroup
		for i := range readers {
			wg.Go(func() {
				_, err := c.ProjectEvents(context.Background(), "acme", fmt.Sprintf("svc%d", i), testNow.Add(-time.Hour), testNow, false)
				assert.NoError(t, err)
			})
		}
		for range readers {
			synctest.Wait()
			h.mu.Lock()
			assert.Equal(t, 1, h.inflight, "requests in flight on the project events endpoint")
			h.mu.Unlock()
			h.release <- struct{}{}
		}
		wg.Wait()
		assert.Equal(t, 1, h.max)
	})
}

func TestEventAccessors(t *testing.T) {
	tests := []struct {
		name                          string
		in                            Event
		trace, span, parent, typ, msg string
	}{
		{
			name: "our tags first",
			in: Event{Title: "*main.PaymentDeclined: card declined",
				Tags:  []Tag{{keys.TagTraceID, "4BF92F3577B34DA6A3CE929D0E0E4736"}, {keys.TagSpanID, "00F067AA0BA902B7"}},
				Trace: TraceContext{TraceID: "ffffffffffffffffffffffffffffffff", SpanID: "00f067aa0ba902b7", ParentSpanID: "53995c3f42cd8ad8"}},
			trace: "4bf92f3577b34da6a3ce929d0e0e4736", span: "00f067aa0ba902b7", parent: "53995c3f42cd8ad8",
			typ: "*main.PaymentDeclined", msg: "card declined",
		},
		{
			name:  "trace column in UUID form",
			in:    Event{Title: "ValueError", Trace: TraceContext{TraceID: "4BF92F35-77B3-4DA6-A3CE-929D0E0E4736", SpanID: "S1"}},
			trace: "4bf92f3577b34da6a3ce929d0e0e4736", span: "s1", typ: "ValueError", msg: "ValueError",
		},
		{
			name:  "older Sentry's trace tag last",
			in:    Event{Tags: []Tag{{keys.SentryTraceTag, "abc"}}},
			trace: "abc",
		},
		{
			name: "the context's parent belongs to another span than the tagged one",
			in: Event{Tags: []Tag{{keys.TagSpanID, "aaaaaaaaaaaaaaaa"}},
				Trace: TraceContext{TraceID: "tt", SpanID: "bbbbbbbbbbbbbbbb", ParentSpanID: "cccccccccccccccc"}},
			trace: "tt", span: "aaaaaaaaaaaaaaaa",
		},
		{
			name: "exception fields before the title",
			in:   Event{Title: "Outer: shown", Message: "raw", ExceptionType: "*pkg.Outer", ExceptionValue: "value"},
			typ:  "*pkg.Outer", msg: "value",
		},
		{
			name: "a sentence is no type",
			in:   Event{Title: "could not reach db: timeout"},
			typ:  "could not reach db: timeout", msg: "could not reach db: timeout",
		},
		{
			name: "the zero trace id is none",
			in:   Event{Trace: TraceContext{TraceID: "00000000-0000-0000-0000-000000000000"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.trace, tt.in.TraceID(), "trace")
			assert.Equal(t, tt.span, tt.in.SpanID(), "span")
			assert.Equal(t, tt.parent, tt.in.ParentSpanID(), "parent")
			typ, msg := tt.in.Exception()
			assert.Equal(t, tt.typ, typ, "type")
			assert.Equal(t, tt.msg, msg, "message")
		})
	}
}

func TestParseRead(t *testing.T) {
	for i, name := range readNames {
		r, err := ParseRead(" " + strings.ToUpper(name))
		require.NoError(t, err)
		assert.Equal(t, Read(i), r)
		assert.Equal(t, name, r.String())
	}
	_, err := ParseRead("fast")
	assert.ErrorContains(t, err, "auto, discover, full, tags")
}
