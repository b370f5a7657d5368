package sentryapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/tracedup/tracedup/internal/keys"
)

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
	// Trace is contexts.trace as the API returned it: in full events, and
	// as Discover's trace, trace.span and trace.parent_span columns.
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
	Platform        flexString  `json:"platform.name"`
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
	} {
		if t.Value != "" {
			e.Tags = append(e.Tags, t)
		}
	}
	return e
}

// TraceID returns the event's trace id, normalised (lowercase hex, no
// dashes): the otel.trace_id tag that tracedup's hook stamps, else
// contexts.trace (full events, Discover's trace column), else the trace tag
// older Sentry versions derived from it. It is "" when the event carries none.
func (e Event) TraceID() string {
	return normalizeID(firstNonEmpty(e.tag(keys.TagTraceID), e.Trace.TraceID, e.tag(keys.SentryTraceTag)))
}

// SpanID returns the otel.span_id tag, else contexts.trace's span id,
// normalised like TraceID.
func (e Event) SpanID() string {
	return normalizeID(firstNonEmpty(e.tag(keys.TagSpanID), e.Trace.SpanID))
}

// ParentSpanID returns contexts.trace's parent span id when it belongs to the
// span SpanID names: where the tag names another span, taking the context's
// parent would invent a link (rootcause.FromEvent reads events the same way).
func (e Event) ParentSpanID() string {
	ctxSpan := normalizeID(e.Trace.SpanID)
	if ctxSpan != "" && ctxSpan != e.SpanID() {
		return ""
	}
	return normalizeID(e.Trace.ParentSpanID)
}

// Service returns the service.name tag, "" when absent.
func (e Event) Service() string { return e.tag(keys.TagServiceName) }

// Exception returns the outermost exception's type and value where the API
// gave them, else the title split by splitTitle, with the message before the
// title's second half.
func (e Event) Exception() (typ, value string) {
	t, v := splitTitle(e.Title)
	return firstNonEmpty(e.ExceptionType, t), firstNonEmpty(e.ExceptionValue, e.Message, v)
}

func (e Event) tag(key string) string {
	v, _ := e.Tag(key)
	return strings.TrimSpace(v)
}

// normalizeID writes a trace or span id the way tracedup's tags do:
// lowercase hex without the dashes of the UUID form some Sentry versions
// return. A value that is not hex is lower-cased and kept, so that equal
// values still group.
func normalizeID(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if strings.Trim(s, "0123456789abcdef-") == "" {
		s = strings.ReplaceAll(s, "-", "")
	}
	if strings.Trim(s, "0") == "" {
		return "" // the zero id, or nothing: no trace
	}
	return s
}

// splitTitle splits an issue title "<type>: <value>". A title whose part
// before ": " is empty or holds white space is a sentence, not a type: it is
// returned as the type and the value both, so that neither is lost.
func splitTitle(title string) (typ, value string) {
	if t, v, ok := strings.Cut(title, ": "); ok && t != "" && !strings.ContainsAny(t, " \t\n") {
		return t, v
	}
	return title, title
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
