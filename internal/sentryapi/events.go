package sentryapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tracedup/tracedup/internal/keys"
)

// The endpoints this package reads, as routes: Sentry rate-limits per caller
// and route, so these are also the keys of the per-endpoint gates.
const (
	// endpointProjectEvents is "List a Project's Error Events",
	// GET /api/0/projects/{org}/{project}/events/
	// (https://docs.sentry.io/api/events/list-a-projects-error-events/).
	endpointProjectEvents = "projects/{org}/{project}/events"
	// endpointOrgEvents is "Query Discover Events in Table Format",
	// GET /api/0/organizations/{org}/events/
	// (https://docs.sentry.io/api/discover/query-discover-events-in-table-format/).
	endpointOrgEvents = "organizations/{org}/events"
)

// orgPageSize is the Discover endpoint's per_page: its documented maximum.
const orgPageSize = 100

// Tag is one event tag. The API returns tags as a list of {"key", "value"}
// objects, not as a map.
type Tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// TraceContext is the event's contexts.trace, where the API returned it.
type TraceContext struct {
	TraceID      string `json:"trace_id,omitempty"`
	SpanID       string `json:"span_id,omitempty"`
	ParentSpanID string `json:"parent_span_id,omitempty"`
}

// Event is one error event as the API returns it, from either endpoint.
type Event struct {
	// EventID is the 32-hex event id the SDK assigned ("eventID"; the
	// Discover endpoint calls it "id").
	EventID string `json:"event_id"`
	// GroupID is the id of the issue the event is grouped into ("groupID";
	// Discover: "issue.id").
	GroupID string `json:"group_id"`
	// Project is the project slug, where known.
	Project string `json:"project,omitempty"`
	// Type is "error" for error events ("event.type", or "type" in a full
	// event).
	Type string `json:"type,omitempty"`
	// Title is the issue-style title: "<type>: <value>" for an exception.
	Title    string `json:"title"`
	Message  string `json:"message,omitempty"`
	Platform string `json:"platform,omitempty"`
	// DateCreated is when the event happened ("dateCreated"; Discover:
	// "timestamp").
	DateCreated time.Time `json:"date_created"`
	Tags        []Tag     `json:"tags,omitempty"`
	// Trace is contexts.trace: returned with full events and by Discover.
	Trace TraceContext `json:"trace,omitzero"`
	// ExceptionType and ExceptionValue are the outermost exception's, where
	// the API returned them (full events, metadata, Discover's error.type).
	ExceptionType  string `json:"exception_type,omitempty"`
	ExceptionValue string `json:"exception_value,omitempty"`
}

// Tag returns the value of the first tag named key.
func (e Event) Tag(key string) (string, bool) {
	for _, t := range e.Tags {
		if t.Key == key {
			return t.Value, true
		}
	}
	return "", false
}

// Query selects the error events of one read.
type Query struct {
	// Org is the organisation slug (or id). Required.
	Org string
	// Projects are project slugs. Empty means every project of the
	// organisation the token can see, read through the Discover endpoint.
	Projects []string
	// Start and End bound the events' time; End zero means now. Start is
	// required: an open range would read the whole retention period.
	Start, End time.Time
	// Full asks the project endpoint for full events (full=true): the only
	// way it returns contexts.trace, so the parent span id, and the
	// exception type apart from the title. Pages are larger. The Discover
	// endpoint always returns these as columns.
	Full bool
}

// Events reads every error event q selects, following pagination to the end,
// and returns them oldest first, each event once.
//
// With Projects it reads "List a Project's Error Events" for each project in
// turn. Without, it reads the organisation-wide Discover endpoint
// ("Query Discover Events in Table Format", project=-1, query
// event.type:error): Sentry's one documented route that lists individual
// events of several projects, filtered by search query, with tag columns.
// The project endpoint is preferred where projects are named because it needs
// only project:read and returns the documented event shape with the full tag
// list; Discover needs event:read and returns only the columns asked for.
//
// On error, Events returns the events read so far with the error.
func (c *Client) Events(ctx context.Context, q Query) ([]Event, error) {
	if q.Org == "" {
		return nil, fmt.Errorf("sentry api: no organisation")
	}
	if q.Start.IsZero() {
		return nil, fmt.Errorf("sentry api: no start time")
	}
	if q.End.IsZero() {
		q.End = c.cfg.now()
	}
	if !q.Start.Before(q.End) {
		return nil, fmt.Errorf("sentry api: start %s is not before end %s", q.Start.Format(time.RFC3339), q.End.Format(time.RFC3339))
	}
	var all []Event
	var err error
	if len(q.Projects) == 0 {
		all, err = c.OrganizationEvents(ctx, q.Org, q.Start, q.End)
	} else {
		for _, p := range q.Projects {
			var evs []Event
			evs, err = c.ProjectEvents(ctx, q.Org, p, q.Start, q.End, q.Full)
			all = append(all, evs...)
			if err != nil {
				break
			}
		}
	}
	return sortUnique(all), err
}

// ProjectEvents reads the error events of one project between start and end
// from GET /api/0/projects/{org}/{project}/events/.
//
// It sends start and end (ISO-8601, UTC) rather than statsPeriod so that the
// window stays put while the pages are read: the endpoint pages by offset,
// and a window sliding with the clock would shift the offsets under the
// cursor. It does not send query=: on this endpoint it is a substring match
// on the message, not a search; instead events whose type is present and not
// "error" are dropped here, as are events outside [start, end) in case the
// server ignores the range. The endpoint lists newest first, so reading stops
// at a page that is entirely older than start.
func (c *Client) ProjectEvents(ctx context.Context, org, project string, start, end time.Time, full bool) ([]Event, error) {
	q := url.Values{}
	q.Set("start", isoTime(start))
	q.Set("end", isoTime(end))
	if full {
		q.Set("full", "true")
	}
	r := request{
		endpoint: endpointProjectEvents,
		path:     "/api/0/projects/" + url.PathEscape(org) + "/" + url.PathEscape(project) + "/events/",
		org:      org, project: project, query: q,
	}
	name := "projects/" + org + "/" + project + "/events"
	return c.paginate(ctx, r, name, func(body []byte) ([]Event, bool, error) {
		var page []projectEvent
		if err := decodeStrict(body, &page); err != nil {
			return nil, false, err
		}
		evs := make([]Event, 0, len(page))
		allOlder := len(page) > 0
		for _, pe := range page {
			e := pe.event(project)
			if !e.DateCreated.IsZero() && !e.DateCreated.Before(start) {
				allOlder = false
			}
			if keep(e, start, end) {
				evs = append(evs, e)
			}
		}
		return evs, allOlder, nil
	})
}

// orgFields are the Discover columns read. Tags use the tags[key] form that
// Sentry's Discover parses (its TAG_KEY_RE); response keys echo the field.
var orgFields = []string{
	"id", "issue.id", "project", "event.type", "title", "message", "platform", "timestamp",
	"trace", "trace.span", "trace.parent_span", "error.type", "error.value",
	"tags[" + keys.TagTraceID + "]", "tags[" + keys.TagSpanID + "]", "tags[" + keys.TagServiceName + "]",
}

// OrganizationEvents reads the error events of every project of org the
// token can see, between start and end, from the Discover endpoint
// GET /api/0/organizations/{org}/events/ with project=-1 ("all available
// projects"), query=event.type:error, per_page=100 and start/end.
func (c *Client) OrganizationEvents(ctx context.Context, org string, start, end time.Time) ([]Event, error) {
	q := url.Values{}
	q["field"] = orgFields
	q.Set("project", "-1")
	q.Set("query", "event.type:error")
	q.Set("sort", "-timestamp")
	q.Set("per_page", strconv.Itoa(orgPageSize))
	q.Set("start", isoTime(start))
	q.Set("end", isoTime(end))
	r := request{
		endpoint: endpointOrgEvents,
		path:     "/api/0/organizations/" + url.PathEscape(org) + "/events/",
		org:      org, query: q,
	}
	return c.paginate(ctx, r, "organizations/"+org+"/events", func(body []byte) ([]Event, bool, error) {
		var page struct {
			Data []discoverRow `json:"data"`
		}
		if err := decodeStrict(body, &page); err != nil {
			return nil, false, err
		}
		if page.Data == nil && !bytes.Contains(body, []byte(`"data"`)) {
			return nil, false, fmt.Errorf(`no "data" list in the body`)
		}
		evs := make([]Event, 0, len(page.Data))
		for _, row := range page.Data {
			if e := row.event(); keep(e, start, end) {
				evs = append(evs, e)
			}
		}
		return evs, false, nil
	})
}

// paginate reads r page by page, following the Link header's next cursor
// while it says results="true". decode turns a body into events and says
// whether reading may stop early.
func (c *Client) paginate(ctx context.Context, r request, name string, decode func([]byte) ([]Event, bool, error)) ([]Event, error) {
	var all []Event
	seen := map[string]bool{}
	for page := 1; ; page++ {
		if page > c.cfg.maxPages {
			return all, c.errorf(r, ErrPagination, 0, fmt.Sprintf("more than %d pages; narrow -since", c.cfg.maxPages), nil)
		}
		r.page = page
		resp, err := c.get(ctx, r)
		if err != nil {
			return all, err
		}
		evs, stop, err := decode(resp.body)
		if err != nil {
			return all, c.errorf(r, ErrMalformed, http.StatusOK, "", err)
		}
		all = append(all, evs...)
		c.cfg.progress(Progress{
			Endpoint: name, Pages: page, Events: len(all), Waited: resp.waited,
			RateLimitRemaining: resp.limits.remaining, ConcurrentRemaining: resp.limits.concurrentRemaining,
		})
		next, ok := NextCursor(resp.header.Get("Link"))
		if !ok || stop {
			return all, nil
		}
		if seen[next] || next == r.cursor {
			return all, c.errorf(r, ErrPagination, 0, fmt.Sprintf("the next cursor %q was already read", next), nil)
		}
		seen[next] = true
		r.cursor = next
	}
}

// keep reports whether an event is an error event inside [start, end).
func keep(e Event, start, end time.Time) bool {
	if e.Type != "" && e.Type != "error" {
		return false
	}
	if e.DateCreated.IsZero() {
		return true // cannot tell; the server filtered by time
	}
	return !e.DateCreated.Before(start) && e.DateCreated.Before(end)
}

// sortUnique orders events oldest first and drops repeated event ids (an
// event can appear on two pages when new events shift the offsets).
func sortUnique(evs []Event) []Event {
	slices.SortStableFunc(evs, func(a, b Event) int {
		if c := a.DateCreated.Compare(b.DateCreated); c != 0 {
			return c
		}
		return strings.Compare(a.EventID, b.EventID)
	})
	return slices.CompactFunc(evs, func(a, b Event) bool { return a.EventID != "" && a.EventID == b.EventID })
}

// isoTime formats t as the ISO-8601 the API documents for start and end.
func isoTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05") }

// parseTime reads the API's timestamps: RFC 3339 with or without fraction,
// and the zone-less ISO-8601 form, taken as UTC.
func parseTime(s string) time.Time {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}

// decodeStrict unmarshals body into v and rejects trailing data.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data after the JSON value")
	}
	return nil
}

// flexString decodes a JSON string, number or null into a string: Sentry
// sends ids as strings on one endpoint and as numbers on another.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*f = ""
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
	default:
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("want a string or number, got %s", b)
		}
		*f = flexString(n.String())
	}
	return nil
}

// flexStrings decodes a string, a list of strings or null (Discover's
// error.type is a list).
type flexStrings []string

func (f *flexStrings) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		var l []flexString
		if err := json.Unmarshal(b, &l); err != nil {
			return err
		}
		*f = (*f)[:0]
		for _, s := range l {
			*f = append(*f, string(s))
		}
		return nil
	}
	var s flexString
	if err := s.UnmarshalJSON(b); err != nil {
		return err
	}
	*f = nil
	if s != "" {
		*f = flexStrings{string(s)}
	}
	return nil
}

// projectEvent is one item of the project events endpoint, in the shape of
// its documented example, plus what full=true adds.
type projectEvent struct {
	EventID   string     `json:"eventID"`
	ID        string     `json:"id"`
	GroupID   flexString `json:"groupID"`
	EventType string     `json:"event.type"`
	Type      string     `json:"type"`
	Title     string     `json:"title"`
	Message   flexString `json:"message"`
	Platform  string     `json:"platform"`
	Date      string     `json:"dateCreated"`
	Tags      []struct {
		Key   flexString `json:"key"`
		Value flexString `json:"value"`
	} `json:"tags"`
	Contexts struct {
		Trace TraceContext `json:"trace"`
	} `json:"contexts"`
	Metadata struct {
		Type  string `json:"type"`
		Value string `json:"value"`
	} `json:"metadata"`
	Entries []struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	} `json:"entries"`
}

func (pe projectEvent) event(project string) Event {
	e := Event{
		EventID:        pe.EventID,
		GroupID:        string(pe.GroupID),
		Project:        project,
		Type:           pe.EventType,
		Title:          pe.Title,
		Message:        string(pe.Message),
		Platform:       pe.Platform,
		DateCreated:    parseTime(pe.Date),
		Trace:          pe.Contexts.Trace,
		ExceptionType:  pe.Metadata.Type,
		ExceptionValue: pe.Metadata.Value,
	}
	if e.EventID == "" {
		e.EventID = pe.ID
	}
	if e.Type == "" {
		e.Type = pe.Type
	}
	for _, t := range pe.Tags {
		e.Tags = append(e.Tags, Tag{Key: string(t.Key), Value: string(t.Value)})
	}
	for _, entry := range pe.Entries {
		if entry.Type != "exception" {
			continue
		}
		var data struct {
			Values []struct {
				Type  string `json:"type"`
				Value string `json:"value"`
			} `json:"values"`
		}
		// Sentry orders exceptions innermost first; the last is the one the
		// title shows. A data block we cannot read leaves metadata in place.
		if json.Unmarshal(entry.Data, &data) == nil && len(data.Values) > 0 {
			outer := data.Values[len(data.Values)-1]
			e.ExceptionType, e.ExceptionValue = outer.Type, outer.Value
		}
	}
	return e
}

// discoverRow is one row of the Discover endpoint for orgFields.
type discoverRow struct {
	ID              flexString  `json:"id"`
	IssueID         flexString  `json:"issue.id"`
	Project         flexString  `json:"project"`
	EventType       flexString  `json:"event.type"`
	Title           flexString  `json:"title"`
	Message         flexString  `json:"message"`
	Platform        flexString  `json:"platform"`
	Timestamp       flexString  `json:"timestamp"`
	Trace           flexString  `json:"trace"`
	TraceSpan       flexString  `json:"trace.span"`
	TraceParentSpan flexString  `json:"trace.parent_span"`
	ErrorType       flexStrings `json:"error.type"`
	ErrorValue      flexStrings `json:"error.value"`
	OtelTraceID     flexString  `json:"tags[otel.trace_id]"`
	OtelSpanID      flexString  `json:"tags[otel.span_id]"`
	ServiceName     flexString  `json:"tags[service.name]"`
}

func (r discoverRow) event() Event {
	e := Event{
		EventID:     string(r.ID),
		GroupID:     string(r.IssueID),
		Project:     string(r.Project),
		Type:        string(r.EventType),
		Title:       string(r.Title),
		Message:     string(r.Message),
		Platform:    string(r.Platform),
		DateCreated: parseTime(string(r.Timestamp)),
		Trace: TraceContext{
			TraceID: string(r.Trace), SpanID: string(r.TraceSpan), ParentSpanID: string(r.TraceParentSpan),
		},
	}
	// error.type lists the exceptions innermost first, like the event.
	if n := len(r.ErrorType); n > 0 {
		e.ExceptionType = r.ErrorType[n-1]
	}
	if n := len(r.ErrorValue); n > 0 {
		e.ExceptionValue = r.ErrorValue[n-1]
	}
	for _, t := range []Tag{
		{keys.TagTraceID, string(r.OtelTraceID)},
		{keys.TagSpanID, string(r.OtelSpanID)},
		{keys.TagServiceName, string(r.ServiceName)},
		{keys.SentryTraceTag, string(r.Trace)},
	} {
		if t.Value != "" {
			e.Tags = append(e.Tags, t)
		}
	}
	return e
}
