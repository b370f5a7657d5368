package sentryapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// endpointEventDetails is "Retrieve an Event for a Project",
// GET /api/0/projects/{org}/{project}/events/{event_id}/ (project:read). For a
// transaction it returns contexts.trace (the transaction's own span and its
// parent, the caller's client span) and an entry of type "spans" with every
// child span's span_id and parent_span_id (Sentry's EventSerializer, with the
// Spans interface of src/sentry/interfaces/spans.py).
const endpointEventDetails = "projects/{org}/{project}/events/{event_id}"

// Transaction is one transaction event of a trace: the spans of one service's
// part of a request, linked to the caller's span by ParentSpanID.
type Transaction struct {
	// EventID is the transaction event's id.
	EventID string
	// Project is the project slug.
	Project string
	// Name is the transaction's name ("GET /checkout").
	Name    string
	TraceID string
	// SpanID is the transaction's own span (its root span in the service),
	// and ParentSpanID the span it was called from: in another service, the
	// caller's client span; "" at the trace's root.
	SpanID, ParentSpanID string
	// Timestamp is when the transaction ended, by its host's clock.
	Timestamp time.Time
	// Spans are the transaction's child spans, once read with
	// TransactionSpans; nil before.
	Spans []Span
}

// Span is one span of a transaction.
type Span struct {
	SpanID, ParentSpanID string
	// Op is the span's operation ("http.client", "db.sql.query").
	Op string
}

// transactionFields are the Discover columns of a transaction: trace.span and
// trace.parent_span are its contexts.trace span_id and parent_span_id
// (Columns.SPAN_ID and Columns.PARENT_SPAN_ID of src/sentry/snuba/events.py;
// the parent has a column on transactions only).
var transactionFields = []string{"id", "project", "transaction", "timestamp", "trace", "trace.span", "trace.parent_span"}

// TraceTransactions lists the transaction events of one trace in the
// projects with the given ids ("-1": every project the token can see)
// between start and end, from Discover (GET /api/0/organizations/{org}/events/
// with query=event.type:transaction trace:<id>, org:read). Their spans are
// not read: see TransactionSpans.
//
// A plan without Discover answers a bare 404, a token without org:read a
// 403, a plan without the global-views feature a 400 for several projects:
// each comes back as an error that errors.Is ErrNotFound, ErrForbidden or
// ErrStatus; ErrNoMultiProject tells the last apart.
func (c *Client) TraceTransactions(ctx context.Context, org string, projectIDs []string, traceID string, start, end time.Time) ([]Transaction, error) {
	q := url.Values{}
	q["field"] = transactionFields
	q["project"] = projectIDs
	q.Set("query", "event.type:transaction trace:"+traceID)
	q.Set("sort", "-timestamp")
	q.Set("per_page", strconv.Itoa(orgPageSize))
	q.Set("start", isoTime(start))
	q.Set("end", isoTime(end))
	r := request{
		endpoint: endpointOrgEvents,
		path:     "/api/0/organizations/" + url.PathEscape(org) + "/events/",
		org:      org, query: q,
	}
	return paginate(ctx, c, r, "", func(body []byte) ([]Transaction, bool, error) {
		var page struct {
			Data []struct {
				ID              flexString `json:"id"`
				Project         flexString `json:"project"`
				Transaction     flexString `json:"transaction"`
				Timestamp       flexString `json:"timestamp"`
				Trace           flexString `json:"trace"`
				TraceSpan       flexString `json:"trace.span"`
				TraceParentSpan flexString `json:"trace.parent_span"`
			} `json:"data"`
		}
		if err := decodeStrict(body, &page); err != nil {
			return nil, false, err
		}
		if page.Data == nil && !bytes.Contains(body, []byte(`"data"`)) {
			return nil, false, fmt.Errorf(`no "data" list in the body`)
		}
		txs := make([]Transaction, 0, len(page.Data))
		for _, row := range page.Data {
			tx := Transaction{
				EventID: string(row.ID), Project: string(row.Project), Name: string(row.Transaction),
				TraceID: normalizeID(string(row.Trace)), SpanID: normalizeID(string(row.TraceSpan)),
				ParentSpanID: normalizeID(string(row.TraceParentSpan)), Timestamp: parseTime(string(row.Timestamp)),
			}
			// A server that ignores the query must not lend another
			// trace's spans to this one.
			if tx.EventID != "" && tx.TraceID == normalizeID(traceID) {
				txs = append(txs, tx)
			}
		}
		return txs, false, nil
	})
}

// ErrNoMultiProject is what TraceTransactions and OrganizationEvents return,
// wrapped, when the plan cannot query several projects at once.
var ErrNoMultiProject = errMultipleProjects

// ErrNoDiscover is what the organisation events endpoint returns, wrapped,
// on a plan without Discover.
var ErrNoDiscover = errNoDiscover

// TransactionSpans reads one transaction event in full, from
// GET /api/0/projects/{org}/{project}/events/{event_id}/ (project:read), and
// returns tx with its SpanID and ParentSpanID from contexts.trace where the
// listing had none, and its Spans.
func (c *Client) TransactionSpans(ctx context.Context, org string, tx Transaction) (Transaction, error) {
	r := request{
		endpoint: endpointEventDetails,
		path:     "/api/0/projects/" + url.PathEscape(org) + "/" + url.PathEscape(tx.Project) + "/events/" + url.PathEscape(tx.EventID) + "/",
		org:      org, project: tx.Project,
	}
	resp, err := c.get(ctx, r)
	if err != nil {
		return tx, err
	}
	var ev struct {
		Type     string `json:"type"`
		Contexts struct {
			Trace TraceContext `json:"trace"`
		} `json:"contexts"`
		Entries []struct {
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		} `json:"entries"`
	}
	if err := decodeStrict(resp.body, &ev); err != nil {
		return tx, c.errorf(r, ErrMalformed, http.StatusOK, "", err)
	}
	if ev.Type != "" && ev.Type != "transaction" {
		return tx, c.errorf(r, ErrMalformed, http.StatusOK, fmt.Sprintf("event %s is of type %q, not a transaction", tx.EventID, ev.Type), nil)
	}
	if tx.SpanID == "" {
		tx.SpanID = normalizeID(ev.Contexts.Trace.SpanID)
	}
	if tx.ParentSpanID == "" {
		tx.ParentSpanID = normalizeID(ev.Contexts.Trace.ParentSpanID)
	}
	tx.Spans = []Span{}
	for _, entry := range ev.Entries {
		if entry.Type != "spans" {
			continue
		}
		var spans []struct {
			SpanID       flexString `json:"span_id"`
			ParentSpanID flexString `json:"parent_span_id"`
			Op           flexString `json:"op"`
		}
		if err := json.Unmarshal(entry.Data, &spans); err != nil {
			return tx, c.errorf(r, ErrMalformed, http.StatusOK, "the spans entry", err)
		}
		for _, s := range spans {
			if id := normalizeID(string(s.SpanID)); id != "" {
				tx.Spans = append(tx.Spans, Span{SpanID: id, ParentSpanID: normalizeID(string(s.ParentSpanID)), Op: string(s.Op)})
			}
		}
	}
	return tx, nil
}

// ProjectIDs returns the ids of the projects of org with the given slugs
// (all of them the token can see when slugs is empty), by slug.
func (c *Client) ProjectIDs(ctx context.Context, org string, slugs []string) (map[string]string, error) {
	var ps []Project
	var err error
	if len(slugs) == 0 {
		ps, err = c.Projects(ctx, org)
	} else {
		ps, err = c.namedProjects(ctx, org, slugs)
	}
	if err != nil {
		return nil, err
	}
	ids := make(map[string]string, len(ps))
	for _, p := range ps {
		ids[p.Slug] = p.ID
	}
	return ids, nil
}
