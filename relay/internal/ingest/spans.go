package ingest

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// sentryTrace is a trace context (contexts.trace) or a span of a
// transaction, a span item or a span v2.
type sentryTrace struct {
	TraceID      string `json:"trace_id"`
	SpanID       string `json:"span_id"`
	ParentSpanID string `json:"parent_span_id"`
}

type sentrySpan struct {
	sentryTrace
	StartTimestamp json.RawMessage `json:"start_timestamp"`
	Timestamp      json.RawMessage `json:"timestamp"`     // transactions, span v1
	EndTimestamp   json.RawMessage `json:"end_timestamp"` // span v2
	IsSegment      bool            `json:"is_segment"`
	// Attributes are a span v2's attributes, {"key": {"type", "value"}}.
	Attributes map[string]struct {
		Value json.RawMessage `json:"value"`
	} `json:"attributes"`
	Data map[string]json.RawMessage `json:"data"` // span v1
}

// serviceFields are what an event or transaction says of the service that
// sent it.
type serviceFields struct {
	ServerName string          `json:"server_name"`
	Release    string          `json:"release"`
	Tags       json.RawMessage `json:"tags"`
	SDK        struct {
		Name string `json:"name"`
	} `json:"sdk"`
	Contexts struct {
		Trace sentryTrace `json:"trace"`
		App   struct {
			AppName string `json:"app_name"`
		} `json:"app"`
		OTel struct {
			Resource map[string]json.RawMessage `json:"resource"`
		} `json:"otel"`
	} `json:"contexts"`
}

type transactionPayload struct {
	serviceFields
	StartTimestamp json.RawMessage `json:"start_timestamp"`
	Timestamp      json.RawMessage `json:"timestamp"`
	Spans          []sentrySpan    `json:"spans"`
}

// serviceName applies the rule of EventService to decoded fields.
func (f *serviceFields) serviceName() string {
	if s := tagValue(f.Tags, "service.name"); s != "" {
		return s
	}
	if s := jsonString(f.Contexts.OTel.Resource["service.name"]); s != "" {
		return s
	}
	for _, s := range []string{f.Contexts.App.AppName, f.Release, f.ServerName, f.SDK.Name} {
		if s != "" {
			return s
		}
	}
	return ""
}

// EventService returns the service that sent an event or transaction
// payload, best effort: the tag service.name (which sentryotel stamps), the
// OTel resource's service.name in contexts.otel, contexts.app.app_name, the
// release, the server name, else the SDK's name; "" when the payload says
// none of these.
func EventService(payload []byte) string {
	var f serviceFields
	if json.Unmarshal(payload, &f) != nil {
		return ""
	}
	return f.serviceName()
}

// tagValue returns the tag key of Sentry's tags, an object of strings or
// an array of [key, value] pairs.
func tagValue(tags json.RawMessage, key string) string {
	tags = bytes.TrimSpace(tags)
	if len(tags) == 0 {
		return ""
	}
	if tags[0] == '{' {
		var m map[string]json.RawMessage
		if json.Unmarshal(tags, &m) == nil {
			return jsonString(m[key])
		}
		return ""
	}
	var pairs [][]json.RawMessage
	if json.Unmarshal(tags, &pairs) != nil {
		return ""
	}
	for _, p := range pairs {
		if len(p) == 2 && jsonString(p[0]) == key {
			return jsonString(p[1])
		}
	}
	return ""
}

// jsonString returns raw as a string if it is a JSON string, else "".
func jsonString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// transactionSpans returns a transaction's spans: its root span from
// contexts.trace (a segment, parented by the caller's span or none), then
// each span of its spans list. Spans without valid ids are left out.
func transactionSpans(payload []byte) ([]Span, error) {
	var tx transactionPayload
	if err := json.Unmarshal(payload, &tx); err != nil {
		return nil, err
	}
	service := tx.serviceName()
	root, ok := makeSpan(tx.Contexts.Trace, tx.StartTimestamp, tx.Timestamp, service)
	if !ok {
		return nil, nil
	}
	root.Segment = true
	spans := make([]Span, 0, 1+len(tx.Spans))
	spans = append(spans, root)
	for _, s := range tx.Spans {
		if s.TraceID == "" {
			s.TraceID = tx.Contexts.Trace.TraceID
		}
		if sp, ok := makeSpan(s.sentryTrace, s.StartTimestamp, s.Timestamp, service); ok {
			spans = append(spans, sp)
		}
	}
	return spans, nil
}

// spanItemSpans returns the spans of a span item: a span v2 item's
// payload is {"items": [span...]}, a span v1 item's is one span.
func spanItemSpans(payload []byte) ([]Span, error) {
	var v2 struct {
		Items []sentrySpan `json:"items"`
	}
	if err := json.Unmarshal(payload, &v2); err != nil {
		return nil, err
	}
	list := v2.Items
	if list == nil {
		var one sentrySpan
		if err := json.Unmarshal(payload, &one); err != nil {
			return nil, err
		}
		list = []sentrySpan{one}
	}
	spans := make([]Span, 0, len(list))
	for _, s := range list {
		end := s.EndTimestamp
		if len(end) == 0 {
			end = s.Timestamp
		}
		sp, ok := makeSpan(s.sentryTrace, s.StartTimestamp, end, s.service())
		if !ok {
			continue
		}
		sp.Segment = s.IsSegment
		spans = append(spans, sp)
	}
	return spans, nil
}

// service returns what a span item says of its service.
func (s *sentrySpan) service() string {
	for _, key := range []string{"service.name", "sentry.release", "sentry.sdk.name"} {
		if a, ok := s.Attributes[key]; ok {
			if v := jsonString(a.Value); v != "" {
				return v
			}
		}
		if v := jsonString(s.Data[key]); v != "" {
			return v
		}
	}
	return ""
}

func makeSpan(t sentryTrace, start, end json.RawMessage, service string) (Span, bool) {
	tid, err := trace.TraceIDFromHex(strings.ToLower(t.TraceID))
	if err != nil {
		return Span{}, false
	}
	sid, err := trace.SpanIDFromHex(strings.ToLower(t.SpanID))
	if err != nil {
		return Span{}, false
	}
	parent, _ := trace.SpanIDFromHex(strings.ToLower(t.ParentSpanID)) // zero when none
	return Span{
		TraceID: tid, SpanID: sid, Parent: parent,
		Start: parseTimestamp(start), End: parseTimestamp(end),
		Service: service,
	}, true
}

// parseTimestamp reads a Sentry timestamp: seconds since the epoch as a
// number (fractions allowed), or an RFC 3339 string. It returns the zero
// time for anything else.
func parseTimestamp(raw json.RawMessage) time.Time {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return time.Time{}
	}
	if raw[0] == '"' {
		s := jsonString(raw)
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t
		}
		// Some SDKs send a naive UTC time.
		if t, err := time.Parse("2006-01-02T15:04:05.999999999", s); err == nil {
			return t
		}
		return time.Time{}
	}
	var f float64
	if json.Unmarshal(raw, &f) != nil || math.IsNaN(f) || f < 0 || f > 1<<34 {
		return time.Time{}
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(math.Round(frac*1e6))*1e3).UTC()
}
