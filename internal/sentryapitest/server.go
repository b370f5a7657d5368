// Package sentryapitest is a stand-in for the Sentry web API, for the tests of
// package sentryapi and of the dedup-report command: a loopback server that
// checks the bearer token, records requests and counts them in flight per
// route, and builders of response bodies shaped like the ones sentry.io sends.
package sentryapitest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// Server is an httptest server in front of a handler. A request without
// "Authorization: Bearer <token>" gets Sentry's 401 and never reaches the
// handler.
type Server struct {
	*httptest.Server
	token string

	mu          sync.Mutex
	handler     http.HandlerFunc
	requests    []*http.Request
	inflight    map[string]int
	maxInflight map[string]int
}

// New starts a Server that serves h and closes it when t ends.
func New(t testing.TB, token string, h http.HandlerFunc) *Server {
	t.Helper()
	s := Start(token, h)
	t.Cleanup(s.Close)
	return s
}

// Start starts a Server; the caller closes it. For examples, which have no
// testing.TB.
func Start(token string, h http.HandlerFunc) *Server {
	s := &Server{token: token, handler: h, inflight: map[string]int{}, maxInflight: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// SetHandler replaces the handler.
func (s *Server) SetHandler(h http.HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handler = h
}

// Requests returns the requests served so far, in order.
func (s *Server) Requests() []*http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*http.Request(nil), s.requests...)
}

// MaxInflight returns the most requests that were in flight at once on route
// (see Route).
func (s *Server) MaxInflight(route string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxInflight[route]
}

// Route names a request path the way Sentry's rate limits count it: by
// endpoint, whatever the slugs ("projects/{org}/{project}/events").
func Route(path string) string {
	p := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(p) == 6 && p[2] == "projects" && p[5] == "events":
		return "projects/{org}/{project}/events"
	case len(p) == 7 && p[2] == "projects" && p[5] == "events":
		return "projects/{org}/{project}/events/{event_id}"
	case len(p) == 5 && p[2] == "organizations" && p[4] == "events":
		return "organizations/{org}/events"
	case len(p) == 5 && p[2] == "organizations" && p[4] == "projects":
		return "organizations/{org}/projects"
	case len(p) == 4 && p[2] == "organizations":
		return "organizations/{org}"
	}
	return path
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	route := Route(r.URL.Path)
	s.mu.Lock()
	s.requests = append(s.requests, r.Clone(context.Background()))
	s.inflight[route]++
	s.maxInflight[route] = max(s.maxInflight[route], s.inflight[route])
	h := s.handler
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inflight[route]--
		s.mu.Unlock()
	}()
	if r.Header.Get("Authorization") != "Bearer "+s.token {
		Detail(w, http.StatusUnauthorized, "Invalid token")
		return
	}
	h(w, r)
}

// WriteJSON writes v as a JSON body with status 200.
func WriteJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// Detail writes Sentry's usual error body, {"detail": msg}, with status.
func Detail(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"detail": msg})
}

// Error bodies as sentry.io sends them.
const (
	// ForbiddenDetail is Django REST framework's PermissionDenied, which
	// Sentry answers when the token lacks the endpoint's scope.
	ForbiddenDetail = "You do not have permission to perform this action."
	// MultipleProjectsDetail is the 400 of the organisation events endpoint
	// for project=-1 without the global-views feature.
	MultipleProjectsDetail = "You cannot view events from multiple projects."
	// NotFoundDetail is the 404 of a slug that does not exist.
	NotFoundDetail = "The requested resource does not exist"
)

// Forbidden writes the 403 of a token without the scope.
func Forbidden(w http.ResponseWriter) { Detail(w, http.StatusForbidden, ForbiddenDetail) }

// MultipleProjects writes the 400 of project=-1 on a plan without global views.
func MultipleProjects(w http.ResponseWriter) {
	Detail(w, http.StatusBadRequest, MultipleProjectsDetail)
}

// NoDiscover writes the 404 of the organisation events endpoint on a plan
// without Discover: no body at all.
func NoDiscover(w http.ResponseWriter) { w.WriteHeader(http.StatusNotFound) }

// NotFound writes the 404 of an organisation or project that does not exist.
func NotFound(w http.ResponseWriter) { Detail(w, http.StatusNotFound, NotFoundDetail) }

// RateLimited writes Sentry's 429: a bare JSON string, not {"detail": ...}.
// The caller sets the rate-limit headers it wants.
func RateLimited(w http.ResponseWriter, limit, window int) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusTooManyRequests)
	_ = json.NewEncoder(w).Encode(fmt.Sprintf("You are attempting to use this endpoint too frequently. Limit is %d requests in %d seconds", limit, window))
}

// Link is Sentry's Link header for a page: a previous and a next entry, each
// with results and cursor, as in https://docs.sentry.io/api/pagination/.
func Link(base, path, prev string, prevResults bool, next string, nextResults bool) string {
	return fmt.Sprintf(`<%s%s?&cursor=%s>; rel="previous"; results="%t"; cursor="%s", <%s%s?&cursor=%s>; rel="next"; results="%t"; cursor="%s"`,
		base, path, prev, prevResults, prev, base, path, next, nextResults, next)
}

// Pages serves items perPage at a time with Sentry's offset cursors
// ("0:<offset>:0") and Link header; wrap turns a page into its body (nil
// writes the list itself).
func Pages(w http.ResponseWriter, r *http.Request, items []any, perPage int, wrap func([]any) any) {
	offset := 0
	if c := r.URL.Query().Get("cursor"); c != "" {
		_, _ = fmt.Sscanf(c, "0:%d:0", &offset)
	}
	page := []any{}
	for i := offset; i < len(items) && i < offset+perPage; i++ {
		page = append(page, items[i])
	}
	next := offset + perPage
	base := "http://" + r.Host
	w.Header().Set("Link", Link(base, r.URL.Path, "0:0:1", offset > 0, fmt.Sprintf("0:%d:0", next), next < len(items)))
	if wrap == nil {
		WriteJSON(w, page)
		return
	}
	WriteJSON(w, wrap(page))
}

// DiscoverBody wraps Discover rows as the organisation events endpoint does.
func DiscoverBody(rows []any) any {
	return map[string]any{"data": rows, "meta": map[string]any{"fields": map[string]string{"id": "string", "timestamp": "date"}, "units": map[string]any{}, "isMetricsData": false, "tips": map[string]any{}}}
}
