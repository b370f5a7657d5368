package main

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tracedup/tracedup/internal/sentryapitest"
)

const testToken = "sntrys_CMD-TEST-TOKEN-do-not-print"

// service is one hop of the gateway -> order -> payment cascade.
type service struct {
	name, issue, exception, message string
	hop                             int           // 0 gateway (root span), 1 order, 2 payment
	skew                            time.Duration // the host's clock error
}

// The three services, each with its own Sentry project and issue. Clocks are
// skewed so that payment's error is not the earliest by timestamp: only the
// span links name it.
var services = []service{
	{"gateway", "100", "*main.DownstreamError", "order service: 502 Bad Gateway", 0, 0},
	{"order", "200", "*main.DownstreamError", "payment service: 502 Bad Gateway", 1, -40 * time.Millisecond},
	{"payment", "300", "*main.PaymentDeclined", "card declined", 2, 0},
}

func traceID(n int) string     { return fmt.Sprintf("4bf92f3577b34da6a3ce929d0e0e47%02d", n) }
func spanID(n, hop int) string { return fmt.Sprintf("00f067aa0ba9%02d%02d", n, hop) }
func eventID(n, hop int) string {
	return fmt.Sprintf("%08x%024x", uint32((n*3+hop+1)*2654435761), n*3+hop)
}

// fixture is a stand-in for sentry.io: organisation acme with three projects
// of three failed requests each, two events a page.
type fixture struct {
	*sentryapitest.Server
	events []sentryapitest.Event
	// noDiscover is a plan without Discover: the organisation events
	// endpoint answers a bare 404.
	noDiscover bool
}

// newFixture starts a fixture whose services all run tracedup's hook,
// except those named in unhooked.
func newFixture(t testing.TB, unhooked ...string) *fixture {
	t.Helper()
	f := startFixture(unhooked...)
	t.Cleanup(f.Close)
	return f
}

// startFixture starts a fixture; the caller closes it.
func startFixture(unhooked ...string) *fixture {
	f := &fixture{}
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Minute)
	for n := range 3 {
		for _, s := range services {
			// payment fails first, order 5 ms after, gateway 10 ms after,
			// each read through its host's clock.
			e := sentryapitest.Event{
				ID: eventID(n, s.hop), Issue: s.issue, Project: s.name, ProjectID: s.hop + 1,
				Time: base.Add(time.Duration(n)*time.Minute + time.Duration(2-s.hop)*5*time.Millisecond + s.skew),
				Type: s.exception, Value: s.message, TraceID: traceID(n), SpanID: spanID(n, s.hop),
				Service: s.name, Hooked: !slices.Contains(unhooked, s.name),
			}
			if s.hop > 0 {
				e.Parent = spanID(n, s.hop-1)
			}
			f.events = append(f.events, e)
		}
	}
	f.Server = sentryapitest.Start(testToken, f.serve)
	return f
}

func (f *fixture) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Sentry-Rate-Limit-Remaining", "50")
	w.Header().Set("X-Sentry-Rate-Limit-ConcurrentRemaining", "0")
	p := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(p) < 4 || p[3] != "acme" {
		sentryapitest.NotFound(w)
		return
	}
	switch sentryapitest.Route(r.URL.Path) {
	case "organizations/{org}":
		sentryapitest.WriteJSON(w, map[string]string{"slug": "acme"})
	case "organizations/{org}/projects":
		var items []any
		for _, s := range services {
			items = append(items, sentryapitest.ProjectItem(s.name, s.hop+1))
		}
		sentryapitest.Pages(w, r, items, 100, nil)
	case "organizations/{org}/events":
		if f.noDiscover {
			sentryapitest.NoDiscover(w)
			return
		}
		ids := r.URL.Query()["project"]
		var rows []any
		for _, e := range f.events {
			if slices.Contains(ids, "-1") || slices.Contains(ids, fmt.Sprint(e.ProjectID)) {
				rows = append(rows, sentryapitest.DiscoverRow(e))
			}
		}
		sentryapitest.Pages(w, r, rows, 2, sentryapitest.DiscoverBody)
	case "projects/{org}/{project}/events":
		render := sentryapitest.SimpleEvent
		if r.URL.Query().Get("full") == "true" {
			render = sentryapitest.FullEvent
		}
		var items []any
		for _, e := range f.events {
			if e.Project == p[4] {
				items = append(items, render(e))
			}
		}
		if items == nil {
			sentryapitest.NotFound(w)
			return
		}
		sentryapitest.Pages(w, r, items, 2, nil)
	default:
		sentryapitest.NotFound(w)
	}
}

// requests returns the URLs requested so far.
func (f *fixture) requests() []string {
	var urls []string
	for _, r := range f.Requests() {
		urls = append(urls, r.URL.String())
	}
	return urls
}

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}
