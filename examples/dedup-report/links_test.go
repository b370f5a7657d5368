package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tracedup/tracedup/internal/sentryapitest"
)

// The tests of this file read data shaped as most Sentry organisations hold
// it: services instrumented with an SDK (and sometimes tracedup's hook), each
// error captured on its service's server span, whose parent is the caller's
// client span in another service. No error's span links to another error's:
// only the transactions, where the services send them, hold the links.

// realService is one service of the realistic fixture.
type realService struct {
	slug, issue, exception, message string
	id                              int
}

var (
	gateway = realService{"gateway", "100", "*main.DownstreamError", "order service: 502 Bad Gateway", 1}
	order   = realService{"order", "200", "*main.DownstreamError", "payment service: 502 Bad Gateway", 2}
	payment = realService{"payment", "300", "*main.PaymentDeclined", "card declined", 3}
	stock   = realService{"stock", "500", "*main.OutOfStock", "sku 42 out of stock", 4}
	realAll = []realService{gateway, order, payment, stock}
)

// realFixture is a stand-in for sentry.io holding realistic traces.
type realFixture struct {
	*sentryapitest.Server
	errors []sentryapitest.Event
	txs    []sentryapitest.Transaction

	noMultiProject bool // a plan without global views: Discover one project at a time
	noDiscover     bool // a plan without Discover: a bare 404
	orgForbidden   bool // a token with project scopes only: 403 from organisation endpoints
	perPage        int  // Discover and full events (default 10)
}

// hop is one call of a request: service s, its server span, the client span
// it calls on (if it calls), and its clock's error.
type hop struct {
	s              realService
	server, client string
	parent         string // the caller's client span
	fails          bool
	skew           time.Duration
	after          time.Duration // when it fails, from the request's start
}

func span(n, hop, kind int) string { return fmt.Sprintf("%04x%04x%08x", 0x5e00+n, hop, kind) }
func realTrace(n int) string       { return fmt.Sprintf("7a0c%028x", n+1) }
func realEventID(n, hop int, kind string) string {
	return fmt.Sprintf("%s%07x%024x", kind, uint32((n*4+hop+1)*2654435761)>>4, n*16+hop)
}

// addTrace adds the errors (and, with transactions, the transactions) of one
// request whose hops are given in call order.
func (f *realFixture) addTrace(n int, at time.Time, hops []hop, transactions, hooked bool) {
	for h, x := range hops {
		if x.fails {
			f.errors = append(f.errors, sentryapitest.Event{
				ID: realEventID(n, h, "e"), Issue: x.s.issue, Project: x.s.slug, ProjectID: x.s.id,
				Time: at.Add(x.after + x.skew), Type: x.s.exception, Value: x.s.message,
				TraceID: realTrace(n), SpanID: x.server, Parent: x.parent, Service: x.s.slug, Hooked: hooked,
			})
		}
		if !transactions {
			continue
		}
		tx := sentryapitest.Transaction{
			ID: realEventID(n, h, "f"), Project: x.s.slug, ProjectID: x.s.id, Name: "POST /" + x.s.slug,
			TraceID: realTrace(n), SpanID: x.server, Parent: x.parent,
			Start: at.Add(x.skew), End: at.Add(x.after + x.skew + time.Millisecond),
			Spans: []sentryapitest.Span{{ID: fmt.Sprintf("%016x", n*100+h+1), Parent: x.server, Op: "db.sql.query", Description: "SELECT 1"}},
		}
		if x.client != "" {
			tx.Spans = append(tx.Spans, sentryapitest.Span{ID: x.client, Parent: x.server, Op: "http.client", Description: "POST http://next/"})
		}
		f.txs = append(f.txs, tx)
	}
}

// cascadeHops is gateway -> order -> payment, payment declining the card,
// each caller failing after its call failed. order's clock runs skew slow.
func cascadeHops(n int, skew time.Duration) []hop {
	return []hop{
		{s: gateway, server: span(n, 0, 1), client: span(n, 0, 2), fails: true, after: 30 * time.Millisecond},
		{s: order, server: span(n, 1, 1), client: span(n, 1, 2), parent: span(n, 0, 2), fails: true, after: 20 * time.Millisecond, skew: skew},
		{s: payment, server: span(n, 2, 1), parent: span(n, 1, 2), fails: true, after: 10 * time.Millisecond},
	}
}

// twoFailureHops is a request that fails twice, independently: gateway
// calls order (-> payment, declined) and, on another client span, stock,
// which is out of stock.
func twoFailureHops(n int) []hop {
	hops := cascadeHops(n, 0)
	return append(hops, hop{s: stock, server: span(n, 3, 1), parent: span(n, 0, 3), fails: true, after: 15 * time.Millisecond})
}

// addStockCall adds the gateway's second client span to the gateway's
// transaction of trace n.
func (f *realFixture) addStockCall(n int) {
	for i := range f.txs {
		if f.txs[i].TraceID == realTrace(n) && f.txs[i].Project == "gateway" {
			f.txs[i].Spans = append(f.txs[i].Spans, sentryapitest.Span{ID: span(n, 0, 3), Parent: span(n, 0, 1), Op: "http.client"})
		}
	}
}

func newRealFixture(t *testing.T) *realFixture {
	f := startRealFixture()
	t.Cleanup(f.Close)
	return f
}

// startRealFixture starts a realFixture; the caller closes it.
func startRealFixture() *realFixture {
	f := &realFixture{perPage: 10}
	f.Server = sentryapitest.Start(testToken, f.serve)
	return f
}

func realBase() time.Time { return time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Minute) }

func (f *realFixture) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Sentry-Rate-Limit-Remaining", "50")
	p := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(p) < 4 || p[3] != "acme" {
		sentryapitest.NotFound(w)
		return
	}
	q := r.URL.Query()
	switch sentryapitest.Route(r.URL.Path) {
	case "organizations/{org}":
		if f.orgForbidden {
			sentryapitest.Forbidden(w)
			return
		}
		sentryapitest.WriteJSON(w, map[string]string{"slug": "acme"})
	case "organizations/{org}/projects":
		if f.orgForbidden {
			sentryapitest.Forbidden(w)
			return
		}
		var items []any
		for _, s := range realAll {
			items = append(items, sentryapitest.ProjectItem(s.slug, s.id))
		}
		sentryapitest.Pages(w, r, items, 100, nil)
	case "organizations/{org}/events":
		switch ids := q["project"]; {
		case f.orgForbidden:
			sentryapitest.Forbidden(w)
		case f.noDiscover:
			sentryapitest.NoDiscover(w)
		case f.noMultiProject && (len(ids) != 1 || ids[0] == "-1"):
			sentryapitest.MultipleProjects(w)
		default:
			f.discover(w, r, ids)
		}
	case "projects/{org}/{project}/events":
		render := sentryapitest.SimpleEvent
		if q.Get("full") == "true" {
			render = sentryapitest.FullEvent
		}
		var items []any
		for _, e := range f.errors {
			if e.Project == p[4] {
				items = append(items, render(e))
			}
		}
		sentryapitest.Pages(w, r, items, f.perPage, nil)
	case "projects/{org}/{project}/events/{event_id}":
		for _, tx := range f.txs {
			if tx.Project == p[4] && tx.ID == p[6] {
				sentryapitest.WriteJSON(w, sentryapitest.TransactionEvent(tx))
				return
			}
		}
		sentryapitest.Detail(w, http.StatusNotFound, "Event not found")
	default:
		sentryapitest.NotFound(w)
	}
}

// discover answers the organisation events endpoint for errors or for one
// trace's transactions, as the query asks.
func (f *realFixture) discover(w http.ResponseWriter, r *http.Request, ids []string) {
	in := func(projectID int) bool {
		return slices.Contains(ids, "-1") || slices.Contains(ids, fmt.Sprint(projectID))
	}
	query := r.URL.Query().Get("query")
	var rows []any
	if rest, ok := strings.CutPrefix(query, "event.type:transaction trace:"); ok {
		for _, tx := range f.txs {
			if tx.TraceID == rest && in(tx.ProjectID) {
				rows = append(rows, sentryapitest.TransactionRow(tx))
			}
		}
	} else {
		for _, e := range f.errors {
			if in(e.ProjectID) {
				rows = append(rows, sentryapitest.DiscoverRow(e))
			}
		}
	}
	sentryapitest.Pages(w, r, rows, f.perPage, sentryapitest.DiscoverBody)
}

// detailsRequests counts the requests for full transaction events.
func (f *realFixture) detailsRequests() int {
	n := 0
	for _, r := range f.Requests() {
		if sentryapitest.Route(r.URL.Path) == "projects/{org}/{project}/events/{event_id}" {
			n++
		}
	}
	return n
}

// linksOut is the part of the -json output these tests read.
type linksOut struct {
	Traces                  int `json:"traces"`
	Incidents               int `json:"incidents"`
	KnownCascades           int `json:"known_cascades"`
	TracesWithKnownCascades int `json:"traces_with_known_cascades"`
	TracesLinkNotKnown      int `json:"traces_link_not_known"`
	Cascades                []struct {
		TraceID   string `json:"trace_id"`
		Link      string `json:"link"`
		RootIssue string `json:"root_issue"`
		Events    []struct {
			IssueID string `json:"issue_id"`
		} `json:"events"`
	} `json:"cascades"`
	SameRequest []struct {
		TraceID         string   `json:"trace_id"`
		Link            string   `json:"link"`
		Services        []string `json:"services"`
		LikelyRootIssue string   `json:"likely_root_issue"`
		Why             string   `json:"why"`
	} `json:"same_request"`
	KnownSymptoms []struct {
		IssueID   string `json:"issue_id"`
		Traces    int    `json:"traces"`
		SymptomOf []struct {
			IssueID string `json:"issue_id"`
			Traces  int    `json:"traces"`
		} `json:"symptom_of"`
	} `json:"known_symptoms"`
	LikelySymptoms []struct {
		IssueID   string `json:"issue_id"`
		Traces    int    `json:"traces"`
		ComesWith []struct {
			IssueID string `json:"issue_id"`
			Traces  int    `json:"traces"`
		} `json:"comes_with"`
	} `json:"likely_symptoms"`
	Links struct {
		TracesNeedingLinks     int  `json:"traces_needing_links"`
		TracesRead             int  `json:"traces_read"`
		Limit                  int  `json:"limit"`
		Sampled                bool `json:"sampled"`
		TracesWithTransactions int  `json:"traces_with_transactions"`
		TransactionsRead       int  `json:"transactions_read"`
	} `json:"links"`
}

func runJSON(t *testing.T, f *realFixture, args ...string) (linksOut, string) {
	t.Helper()
	code, out, errOut := runCmd(t, withToken, append([]string{"-url", f.URL, "-org", "acme", "-json"}, args...)...)
	require.Equal(t, exitOK, code, errOut)
	var r linksOut
	require.NoError(t, json.Unmarshal([]byte(out), &r), out)
	return r, errOut
}

// symptomIssues returns issue -> the issues it is (likely) a symptom of,
// with their trace counts, as "300x8".
func knownOf(r linksOut) map[string][]string {
	m := map[string][]string{}
	for _, s := range r.KnownSymptoms {
		for _, o := range s.SymptomOf {
			m[s.IssueID] = append(m[s.IssueID], fmt.Sprintf("%sx%d", o.IssueID, o.Traces))
		}
	}
	return m
}

func likelyOf(r linksOut) map[string][]string {
	m := map[string][]string{}
	for _, s := range r.LikelySymptoms {
		for _, o := range s.ComesWith {
			m[s.IssueID] = append(m[s.IssueID], fmt.Sprintf("%sx%d", o.IssueID, o.Traces))
		}
	}
	return m
}

// TestHookOnlyData is the first reproduction of issue 17: events as the
// original article's hook tags them (otel.trace_id, otel.span_id,
// service.name) and no parent links, 6 requests of 3 errors each, read over
// 3 pages. Each request is reported, as one "same request, link not known".
func TestHookOnlyData(t *testing.T) {
	f := newRealFixture(t)
	f.perPage = 7
	for n := range 6 {
		f.addTrace(n, realBase().Add(time.Duration(n)*time.Minute), cascadeHops(n, 0), false, true)
	}
	for i := range f.errors {
		f.errors[i].Parent = "" // the hook stamps no parent
	}
	r, errOut := runJSON(t, f)
	assert.Contains(t, errOut, "page 3, 18 error events")
	assert.Equal(t, 6, r.Traces)
	assert.Equal(t, 6, r.TracesLinkNotKnown, "every request reported")
	require.Len(t, r.SameRequest, 6)
	for _, g := range r.SameRequest {
		assert.Equal(t, "not known", g.Link)
		assert.ElementsMatch(t, []string{"gateway", "order", "payment"}, g.Services)
		assert.Equal(t, "300", g.LikelyRootIssue, "payment fails first by every clock")
	}
	assert.Empty(t, r.Cascades, "no link is known: nothing is a known cascade")
	assert.Empty(t, r.KnownSymptoms)
	assert.Equal(t, map[string][]string{"100": {"300x6"}, "200": {"300x6"}}, likelyOf(r))
}

// TestSDKOnlyWithoutTransactions is the second reproduction: services
// without the hook (the trace id only in contexts.trace, Discover's trace
// column), 8 gateway -> order -> payment cascades, per project and
// organisation-wide, on each plan and token. All 8 are reported.
func TestSDKOnlyWithoutTransactions(t *testing.T) {
	for _, tt := range []struct {
		name string
		set  func(*realFixture)
		args []string
		note string
	}{
		{"no multi-project Discover, per project", func(f *realFixture) { f.noMultiProject = true }, []string{"-project", "gateway,order,payment"}, "several projects at once"},
		{"no multi-project Discover, organisation-wide", func(f *realFixture) { f.noMultiProject = true }, nil, "several projects at once"},
		{"no Discover, per project", func(f *realFixture) { f.noDiscover = true }, []string{"-project", "gateway,order,payment"}, "no Discover"},
		{"no Discover, organisation-wide", func(f *realFixture) { f.noDiscover = true }, nil, "no Discover"},
		{"project scopes only", func(f *realFixture) { f.orgForbidden = true }, []string{"-project", "gateway,order,payment"}, "403"},
		{"Discover, organisation-wide", func(*realFixture) {}, nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newRealFixture(t)
			tt.set(f)
			for n := range 8 {
				f.addTrace(n, realBase().Add(time.Duration(n)*time.Minute), cascadeHops(n, 0), false, false)
			}
			r, errOut := runJSON(t, f, tt.args...)
			if tt.note != "" {
				assert.Contains(t, errOut, tt.note)
			}
			assert.Equal(t, 8, r.Traces)
			assert.Equal(t, 8, r.TracesLinkNotKnown, "8 of 8 reported")
			require.Len(t, r.SameRequest, 8)
			for _, g := range r.SameRequest {
				assert.ElementsMatch(t, []string{"gateway", "order", "payment"}, g.Services)
				assert.Equal(t, "300", g.LikelyRootIssue)
			}
			assert.Equal(t, map[string][]string{"100": {"300x8"}, "200": {"300x8"}}, likelyOf(r))
			assert.Empty(t, r.KnownSymptoms)
		})
	}
}

// TestSDKOnlyWithTransactions: the same services send transactions. Their
// span links make each cascade known, and name payment the root cause
// although order's clock runs 40 ms slow, so that order's error is the
// earliest by timestamp.
func TestSDKOnlyWithTransactions(t *testing.T) {
	for _, tt := range []struct {
		name string
		set  func(*realFixture)
		args []string
	}{
		{"Discover, organisation-wide", func(*realFixture) {}, nil},
		{"Discover, per project", func(*realFixture) {}, []string{"-project", "gateway,order,payment"}},
		{"no multi-project Discover, per project", func(f *realFixture) { f.noMultiProject = true }, []string{"-project", "gateway,order,payment"}},
		{"no multi-project Discover, organisation-wide", func(f *realFixture) { f.noMultiProject = true }, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newRealFixture(t)
			tt.set(f)
			for n := range 8 {
				f.addTrace(n, realBase().Add(time.Duration(n)*time.Minute), cascadeHops(n, -40*time.Millisecond), true, false)
			}
			r, errOut := runJSON(t, f, tt.args...)
			assert.Equal(t, 8, r.KnownCascades, errOut)
			assert.Equal(t, 8, r.Incidents)
			assert.Zero(t, r.TracesLinkNotKnown)
			assert.Empty(t, r.SameRequest)
			for _, c := range r.Cascades {
				assert.Equal(t, "known", c.Link)
				assert.Equal(t, "300", c.RootIssue, "trace %s", c.TraceID)
			}
			assert.Equal(t, map[string][]string{"100": {"300x8"}, "200": {"300x8"}}, knownOf(r))
			assert.Empty(t, r.LikelySymptoms)
			assert.Equal(t, 8, r.Links.TracesWithTransactions)
			assert.Equal(t, 24, r.Links.TransactionsRead)
		})
	}
}

// TestMixedData: the gateway runs tracedup's hook, the others only the SDK;
// the first four requests have transactions, the last four do not (the
// services sampled them out). Four known cascades, four "link not known",
// and the symptom issues are only likely: in four traces it is not known.
func TestMixedData(t *testing.T) {
	f := newRealFixture(t)
	for n := range 8 {
		f.addTrace(n, realBase().Add(time.Duration(n)*time.Minute), cascadeHops(n, 0), n < 4, false)
	}
	for i := range f.errors {
		f.errors[i].Hooked = f.errors[i].Project == "gateway"
	}
	r, errOut := runJSON(t, f)
	assert.Equal(t, 4, r.KnownCascades, errOut)
	assert.Equal(t, 4, r.TracesLinkNotKnown)
	require.Len(t, r.SameRequest, 4)
	for _, g := range r.SameRequest {
		assert.Contains(t, g.Why, "no transactions")
	}
	assert.Empty(t, r.KnownSymptoms, "not known in every trace")
	assert.Equal(t, map[string][]string{"100": {"300x8"}, "200": {"300x8"}}, likelyOf(r))
}

// TestTwoIndependentFailures: one request fails twice, in payment (with its
// cascade through order and the gateway) and in stock. Stock's failure is
// never a known symptom of payment's.
func TestTwoIndependentFailures(t *testing.T) {
	for _, transactions := range []bool{true, false} {
		t.Run(fmt.Sprintf("transactions=%t", transactions), func(t *testing.T) {
			f := newRealFixture(t)
			f.addTrace(0, realBase(), twoFailureHops(0), transactions, false)
			f.addStockCall(0)
			r, errOut := runJSON(t, f)
			for _, c := range r.Cascades {
				var issues []string
				for _, e := range c.Events {
					issues = append(issues, e.IssueID)
				}
				assert.False(t, slices.Contains(issues, "500") && slices.Contains(issues, "300"),
					"stock's and payment's failures in one known cascade: %v\n%s", issues, errOut)
			}
			if transactions {
				// The gateway's error follows from both failures; it joins
				// the one that began first (Discover's timestamps are whole
				// seconds: here the event id decides).
				assert.Equal(t, 2, r.Incidents, "two incidents, each known")
				for _, c := range r.Cascades {
					assert.Contains(t, []string{"300", "500"}, c.RootIssue, "each failure its own root cause")
				}
				assert.Empty(t, r.SameRequest)
				return
			}
			require.Len(t, r.SameRequest, 1, "shown together, link not known")
			assert.Equal(t, "not known", r.SameRequest[0].Link)
		})
	}
}

// TestLinkSampling: more traces need links than -link-traces allows; a
// sample is read, and the rest stay "link not known", which stderr and the
// JSON say.
func TestLinkSampling(t *testing.T) {
	f := newRealFixture(t)
	for n := range 8 {
		f.addTrace(n, realBase().Add(time.Duration(n)*time.Minute), cascadeHops(n, 0), true, false)
	}
	r, errOut := runJSON(t, f, "-link-traces", "3")
	assert.Contains(t, errOut, "3 of the 8 traces")
	assert.Contains(t, errOut, "sampled")
	assert.True(t, r.Links.Sampled)
	assert.Equal(t, 8, r.Links.TracesNeedingLinks)
	assert.Equal(t, 3, r.Links.TracesRead)
	assert.Equal(t, 3, r.Links.Limit)
	assert.Equal(t, 3, r.KnownCascades)
	assert.Equal(t, 5, r.TracesLinkNotKnown)
	assert.LessOrEqual(t, f.detailsRequests(), 9, "three transactions for each of three traces")
	for _, g := range r.SameRequest {
		assert.Contains(t, g.Why, "-link-traces")
	}
	assert.Equal(t, 1, f.MaxInflight("projects/{org}/{project}/events/{event_id}"))
	assert.Equal(t, 1, f.MaxInflight("organizations/{org}/events"))
	for _, u := range f.Requests() {
		assert.NotContains(t, u.URL.String(), testToken)
		if sentryapitest.Route(u.URL.Path) == "organizations/{org}/events" && strings.Contains(u.URL.Query().Get("query"), "transaction") {
			_, err := url.ParseQuery(u.URL.RawQuery)
			require.NoError(t, err)
		}
	}
}
