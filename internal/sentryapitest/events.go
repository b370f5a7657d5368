package sentryapitest

import (
	"strconv"
	"time"
)

// Event describes one error event; the builders below render it the way
// each endpoint returns it.
type Event struct {
	ID        string // 32 hex
	Issue     string // group id
	Project   string // slug
	ProjectID int
	Time      time.Time
	Type      string // outermost exception type
	Value     string // its value
	TraceID   string // 32 hex; "" for an event outside any trace
	SpanID    string
	Parent    string // parent span id; "" on the root span
	Service   string
	// Hooked events carry the tags tracedup's hook stamps (otel.trace_id,
	// otel.span_id, service.name); others have only contexts.trace, as an
	// SDK without the hook sends it.
	Hooked bool
}

func (e Event) title() string { return e.Type + ": " + e.Value }

func (e Event) tags() []map[string]string {
	tags := []map[string]string{
		{"key": "environment", "value": "production"},
		{"key": "level", "value": "error"},
	}
	if e.Hooked {
		tags = append(tags,
			map[string]string{"key": "otel.span_id", "value": e.SpanID},
			map[string]string{"key": "otel.trace_id", "value": e.TraceID},
			map[string]string{"key": "service.name", "value": e.Service})
	}
	// Current Sentry keeps contexts.trace out of the tags: no "trace" tag.
	return tags
}

// SimpleEvent renders e as an item of "List a Project's Error Events" without
// full=true (SimpleEventSerializer): tags, but no contexts.
func SimpleEvent(e Event) map[string]any {
	return map[string]any{
		"id":          e.ID,
		"event.type":  "error",
		"groupID":     e.Issue,
		"eventID":     e.ID,
		"projectID":   strconv.Itoa(e.ProjectID),
		"message":     "",
		"title":       e.title(),
		"location":    "main.go",
		"culprit":     "main.handler",
		"user":        nil,
		"tags":        e.tags(),
		"platform":    "go",
		"dateCreated": e.Time.UTC().Format("2006-01-02T15:04:05.000000Z"),
		"crashFile":   nil,
		"metadata":    map[string]any{"type": e.Type, "value": e.Value, "in_app_frame_mix": "in-app-only"},
	}
}

// FullEvent renders e as an item of the same list with full=true
// (EventSerializer): no "event.type" but "type", the exception entries, and
// contexts.trace.
func FullEvent(e Event) map[string]any {
	contexts := map[string]any{}
	if e.TraceID != "" {
		trace := map[string]any{"trace_id": e.TraceID, "span_id": e.SpanID, "op": "http.server", "status": "internal_error", "type": "trace"}
		if e.Parent != "" {
			trace["parent_span_id"] = e.Parent
		}
		contexts["trace"] = trace
	}
	return map[string]any{
		"id":        e.ID,
		"groupID":   e.Issue,
		"eventID":   e.ID,
		"projectID": strconv.Itoa(e.ProjectID),
		"size":      4096,
		"entries": []any{
			map[string]any{"type": "exception", "data": map[string]any{"values": []any{
				map[string]any{"type": "*errors.errorString", "value": "cause", "stacktrace": nil},
				map[string]any{"type": e.Type, "value": e.Value, "stacktrace": map[string]any{"frames": []any{}}},
			}, "hasSystemFrames": false, "excOmitted": nil}},
		},
		"dist":           nil,
		"message":        "",
		"title":          e.title(),
		"location":       "main.go",
		"user":           nil,
		"contexts":       contexts,
		"sdk":            map[string]any{"name": "sentry.go", "version": "0.46.2"},
		"context":        map[string]any{},
		"packages":       map[string]any{},
		"type":           "error",
		"metadata":       map[string]any{"type": e.Type, "value": e.Value},
		"tags":           e.tags(),
		"platform":       "go",
		"dateReceived":   e.Time.UTC().Add(time.Second).Format("2006-01-02T15:04:05.000000Z"),
		"errors":         []any{},
		"occurrence":     nil,
		"_meta":          map[string]any{},
		"crashFile":      nil,
		"culprit":        "main.handler",
		"dateCreated":    e.Time.UTC().Format("2006-01-02T15:04:05.000000Z"),
		"fingerprints":   []string{"0123456789abcdef0123456789abcdef"},
		"groupingConfig": map[string]any{"id": "newstyle:2023-01-11", "enhancements": "x"},
	}
}

// DiscoverRow renders e as a row of the organisation events endpoint for the
// fields the client asks for. Fields the event does not have come back as
// null or "", as Discover returns them; a tag the event lacks is "".
func DiscoverRow(e Event) map[string]any {
	tag := func(v string) string {
		if e.Hooked {
			return v
		}
		return ""
	}
	var parent any
	if e.Parent != "" {
		parent = e.Parent
	}
	return map[string]any{
		"id": e.ID, "issue.id": mustAtoi(e.Issue), "project": e.Project, "project.name": e.Project,
		"event.type": "error", "title": e.title(), "message": e.title(), "platform.name": "go",
		"timestamp": e.Time.UTC().Format("2006-01-02T15:04:05+00:00"),
		"trace":     e.TraceID, "trace.span": e.SpanID, "trace.parent_span": parent,
		"error.type": []string{"*errors.errorString", e.Type}, "error.value": []string{"cause", e.Value},
		"tags[otel.trace_id]": tag(e.TraceID), "tags[otel.span_id]": tag(e.SpanID), "tags[service.name]": tag(e.Service),
	}
}

func mustAtoi(s string) any {
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	return s
}

// ProjectItem renders a project of "List an Organization's Projects".
func ProjectItem(slug string, id int) map[string]any {
	return map[string]any{"id": strconv.Itoa(id), "slug": slug, "name": slug, "platform": "go", "isMember": true, "hasAccess": true, "features": []string{}}
}

// Transaction describes one transaction event: one service's part of a
// request, as an SDK with tracing sends it (any language).
type Transaction struct {
	ID        string // 32 hex
	Project   string
	ProjectID int
	Name      string // "GET /checkout"
	TraceID   string
	SpanID    string // the transaction's own span: the service's server span
	Parent    string // the caller's client span; "" at the trace's root
	Start     time.Time
	End       time.Time
	Spans     []Span // child spans
}

// Span is a child span of a transaction.
type Span struct {
	ID, Parent, Op, Description string
}

// TransactionRow renders t as a Discover row for the columns the client asks
// of transactions (id, project, transaction, timestamp, trace, trace.span,
// trace.parent_span): the parent is null at the trace's root.
func TransactionRow(t Transaction) map[string]any {
	var parent any
	if t.Parent != "" {
		parent = t.Parent
	}
	return map[string]any{
		"id": t.ID, "project": t.Project, "project.name": t.Project, "transaction": t.Name,
		"timestamp": t.End.UTC().Format("2006-01-02T15:04:05+00:00"),
		"trace":     t.TraceID, "trace.span": t.SpanID, "trace.parent_span": parent,
	}
}

// TransactionEvent renders t as "Retrieve an Event for a Project" returns a
// transaction (DetailedEventSerializer): contexts.trace, an entry of type
// "spans" with each span's span_id and parent_span_id, startTimestamp and
// endTimestamp as epoch seconds, and no dateCreated.
func TransactionEvent(t Transaction) map[string]any {
	trace := map[string]any{"trace_id": t.TraceID, "span_id": t.SpanID, "op": "http.server", "status": "ok", "type": "trace"}
	if t.Parent != "" {
		trace["parent_span_id"] = t.Parent
	}
	spans := []any{}
	for _, s := range t.Spans {
		spans = append(spans, map[string]any{
			"trace_id": t.TraceID, "span_id": s.ID, "parent_span_id": s.Parent, "op": s.Op, "description": s.Description,
			"start_timestamp": float64(t.Start.UnixMicro()) / 1e6, "timestamp": float64(t.End.UnixMicro()) / 1e6,
			"same_process_as_parent": true, "tags": nil, "data": map[string]any{},
		})
	}
	return map[string]any{
		"id": t.ID, "groupID": nil, "eventID": t.ID, "projectID": strconv.Itoa(t.ProjectID), "size": 2048,
		"entries": []any{
			map[string]any{"type": "spans", "data": spans},
			map[string]any{"type": "request", "data": map[string]any{"method": "GET", "url": "http://" + t.Project + "/"}},
		},
		"dist": nil, "message": "", "title": t.Name, "location": t.Name, "user": nil,
		"contexts": map[string]any{"trace": trace}, "sdk": map[string]any{"name": "sentry.go", "version": "0.46.2"},
		"context": map[string]any{}, "packages": map[string]any{}, "type": "transaction",
		"metadata": map[string]any{"title": t.Name}, "tags": []any{map[string]any{"key": "transaction", "value": t.Name}},
		"platform": "go", "dateReceived": t.End.UTC().Add(time.Second).Format("2006-01-02T15:04:05.000000Z"),
		"errors": []any{}, "occurrence": nil, "_meta": map[string]any{},
		"startTimestamp": float64(t.Start.UnixMicro()) / 1e6, "endTimestamp": float64(t.End.UnixMicro()) / 1e6,
		"measurements": nil, "breakdowns": nil, "release": nil, "userReport": nil, "sdkUpdates": []any{},
		"nextEventID": nil, "previousEventID": nil,
	}
}
