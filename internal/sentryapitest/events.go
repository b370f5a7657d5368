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
