package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
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

// fixtureEvent is one event of "List a Project's Error Events" in its
// documented shape (eventID, id, groupID, dateCreated, tags as a list of
// key/value objects, title...), plus contexts.trace as full=true returns it.
func fixtureEvent(n int, s service, base time.Time) map[string]any {
	// payment fails first, order 5 ms after, gateway 10 ms after, all
	// read through each host's clock.
	at := base.Add(time.Duration(n)*time.Minute + time.Duration(2-s.hop)*5*time.Millisecond + s.skew)
	trace := map[string]any{"trace_id": traceID(n), "span_id": spanID(n, s.hop), "op": "http.server", "type": "trace"}
	if s.hop > 0 {
		trace["parent_span_id"] = spanID(n, s.hop-1)
	}
	return map[string]any{
		"eventID": eventID(n, s.hop),
		"id":      eventID(n, s.hop),
		"groupID": s.issue,
		"tags": []map[string]string{
			{"key": "environment", "value": "production"},
			{"key": "level", "value": "error"},
			{"key": "otel.trace_id", "value": traceID(n)},
			{"key": "otel.span_id", "value": spanID(n, s.hop)},
			{"key": "service.name", "value": s.name},
			{"key": "trace", "value": traceID(n)},
		},
		"dateCreated": at.UTC().Format("2006-01-02T15:04:05.000000Z"),
		"user":        nil,
		"message":     "",
		"title":       s.exception + ": " + s.message,
		"platform":    "go",
		"event.type":  "error",
		"type":        "error",
		"projectID":   fmt.Sprint(s.hop + 1),
		"culprit":     "main.handler",
		"location":    "main.go:42",
		"metadata":    map[string]string{"type": s.exception, "value": s.message},
		"contexts":    map[string]any{"trace": trace},
	}
}

// fixture is a stand-in for sentry.io with three projects of three events
// each, two events a page.
type fixture struct {
	*httptest.Server
	base time.Time

	mu       sync.Mutex
	requests []string
	handler  http.HandlerFunc // overrides the default when set
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := startFixture()
	t.Cleanup(f.Close)
	return f
}

// startFixture starts a fixture; the caller closes it.
func startFixture() *fixture {
	f := &fixture{base: time.Now().UTC().Add(-time.Hour).Truncate(time.Minute)}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	return f
}

func (f *fixture) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, r.URL.String())
	h := f.handler
	f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+testToken {
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]string{"detail": "Invalid token"})
		return
	}
	if h != nil {
		h(w, r)
		return
	}
	w.Header().Set("X-Sentry-Rate-Limit-Remaining", "50")
	w.Header().Set("X-Sentry-Rate-Limit-ConcurrentRemaining", "0")
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(parts) == 4 && parts[2] == "organizations" && parts[3] == "acme":
		_ = json.NewEncoder(w).Encode(map[string]string{"slug": "acme"})
		return
	case len(parts) == 6 && parts[2] == "projects" && parts[3] == "acme" && parts[5] == "events":
		for _, s := range services {
			if s.name == parts[4] {
				f.servePages(w, r, func(n int) any { return fixtureEvent(n, s, f.base) }, func(v []any) any { return v })
				return
			}
		}
	case len(parts) == 5 && parts[2] == "organizations" && parts[3] == "acme" && parts[4] == "events":
		f.servePages(w, r, func(i int) any { return discoverRow(fixtureEvent(i/3, services[i%3], f.base)) },
			func(v []any) any { return map[string]any{"data": v, "meta": map[string]any{}} }, 9)
		return
	}
	w.WriteHeader(http.StatusNotFound)
	_ = json.NewEncoder(w).Encode(map[string]string{"detail": "The requested resource does not exist"})
}

// servePages serves items 0..n-1 (3 by default), two a page, linked by
// Sentry's Link header.
func (f *fixture) servePages(w http.ResponseWriter, r *http.Request, item func(int) any, wrap func([]any) any, n ...int) {
	total := 3
	if len(n) > 0 {
		total = n[0]
	}
	const perPage = 2
	offset := 0
	if c := r.URL.Query().Get("cursor"); c != "" {
		_, _ = fmt.Sscanf(c, "0:%d:0", &offset)
	}
	var page []any
	for i := offset; i < total && i < offset+perPage; i++ {
		page = append(page, item(i))
	}
	next := offset + perPage
	link := fmt.Sprintf(`<%s%s?&cursor=0:0:1>; rel="previous"; results="%t"; cursor="0:0:1", <%s%s?&cursor=0:%d:0>; rel="next"; results="%t"; cursor="0:%d:0"`,
		f.URL, r.URL.Path, offset > 0, f.URL, r.URL.Path, next, next < total, next)
	w.Header().Set("Link", link)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(wrap(page))
}

// discoverRow turns a fixture event into a Discover row.
func discoverRow(e map[string]any) map[string]any {
	tags := map[string]string{}
	for _, t := range e["tags"].([]map[string]string) {
		tags[t["key"]] = t["value"]
	}
	trace := e["contexts"].(map[string]any)["trace"].(map[string]any)
	meta := e["metadata"].(map[string]string)
	return map[string]any{
		"id": e["eventID"], "issue.id": json.Number(e["groupID"].(string)), "project": tags["service.name"],
		"event.type": "error", "title": e["title"], "message": "", "platform": "go",
		"timestamp": e["dateCreated"], "trace": trace["trace_id"], "trace.span": trace["span_id"],
		"trace.parent_span": trace["parent_span_id"], "error.type": []string{meta["type"]}, "error.value": []string{meta["value"]},
		"tags[otel.trace_id]": tags["otel.trace_id"], "tags[otel.span_id]": tags["otel.span_id"], "tags[service.name]": tags["service.name"],
	}
}

func (f *fixture) setHandler(h http.HandlerFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handler = h
}

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}
