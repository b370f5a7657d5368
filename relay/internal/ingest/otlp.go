package ingest

import (
	"encoding/hex"
	"encoding/json"
	"mime"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// OTLP span flags (trace/v1 SpanFlags): whether the parent is known to be
// in another process.
const (
	flagHasIsRemote = 0x100
	flagIsRemote    = 0x200
)

// otlpFormat returns "protobuf" or "json" for an OTLP/HTTP request's
// Content-Type, "" for any other.
func otlpFormat(contentType string) string {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return ""
	}
	switch mt {
	case "application/x-protobuf", "application/protobuf":
		return "protobuf"
	case "application/json":
		return "json"
	}
	return ""
}

// otlpSpans decodes an OTLP/HTTP traces request body
// (ExportTraceServiceRequest, whose wire form is TracesData's) in format and
// returns its spans. A span is a segment when it has no parent, its parent
// is remote, or it is a server or consumer span.
func otlpSpans(body []byte, format string) ([]Span, error) {
	if format == "json" {
		return otlpJSONSpans(body)
	}
	var data tracev1.TracesData
	if err := proto.Unmarshal(body, &data); err != nil {
		return nil, err
	}
	var spans []Span
	for _, rs := range data.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				tid, ok1 := traceIDFrom(s.GetTraceId())
				sid, ok2 := spanIDFrom(s.GetSpanId())
				if !ok1 || !ok2 {
					continue
				}
				parent, _ := spanIDFrom(s.GetParentSpanId())
				spans = append(spans, Span{
					TraceID: tid, SpanID: sid, Parent: parent,
					Start:   unixNano(s.GetStartTimeUnixNano()),
					End:     unixNano(s.GetEndTimeUnixNano()),
					Service: service,
					Segment: isSegment(parent, s.GetFlags(), int32(s.GetKind())),
				})
			}
		}
	}
	return spans, nil
}

func isSegment(parent trace.SpanID, flags uint32, kind int32) bool {
	return !parent.IsValid() ||
		flags&flagHasIsRemote != 0 && flags&flagIsRemote != 0 ||
		kind == int32(tracev1.Span_SPAN_KIND_SERVER) || kind == int32(tracev1.Span_SPAN_KIND_CONSUMER)
}

func traceIDFrom(b []byte) (trace.TraceID, bool) {
	var id trace.TraceID
	if len(b) != len(id) {
		return id, false
	}
	copy(id[:], b)
	return id, id.IsValid()
}

func spanIDFrom(b []byte) (trace.SpanID, bool) {
	var id trace.SpanID
	if len(b) != len(id) {
		return id, false
	}
	copy(id[:], b)
	return id, id.IsValid()
}

func unixNano(ns uint64) time.Time {
	if ns == 0 || ns > 1<<62 {
		return time.Time{}
	}
	return time.Unix(0, int64(ns)).UTC()
}

// OTLP/JSON differs from protobuf's canonical JSON mapping: ids are hex,
// not base64, and enums are integers (the OTLP specification's
// "JSON Protobuf Encoding"), so it is decoded here rather than with
// protojson.
type otlpJSON struct {
	ResourceSpans []struct {
		Resource struct {
			Attributes []struct {
				Key   string `json:"key"`
				Value struct {
					StringValue string `json:"stringValue"`
				} `json:"value"`
			} `json:"attributes"`
		} `json:"resource"`
		ScopeSpans []struct {
			Spans []struct {
				TraceID           string          `json:"traceId"`
				SpanID            string          `json:"spanId"`
				ParentSpanID      string          `json:"parentSpanId"`
				Flags             uint32          `json:"flags"`
				Kind              json.RawMessage `json:"kind"`
				StartTimeUnixNano json.RawMessage `json:"startTimeUnixNano"`
				EndTimeUnixNano   json.RawMessage `json:"endTimeUnixNano"`
			} `json:"spans"`
		} `json:"scopeSpans"`
	} `json:"resourceSpans"`
}

func otlpJSONSpans(body []byte) ([]Span, error) {
	var data otlpJSON
	if err := json.Unmarshal(body, &data); err != nil {
		return nil, err
	}
	var spans []Span
	for _, rs := range data.ResourceSpans {
		service := ""
		for _, kv := range rs.Resource.Attributes {
			if kv.Key == "service.name" {
				service = kv.Value.StringValue
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				tid, err1 := hex.DecodeString(s.TraceID)
				sid, err2 := hex.DecodeString(s.SpanID)
				if err1 != nil || err2 != nil {
					continue
				}
				traceID, ok1 := traceIDFrom(tid)
				spanID, ok2 := spanIDFrom(sid)
				if !ok1 || !ok2 {
					continue
				}
				var parent trace.SpanID
				if p, err := hex.DecodeString(s.ParentSpanID); err == nil {
					parent, _ = spanIDFrom(p)
				}
				spans = append(spans, Span{
					TraceID: traceID, SpanID: spanID, Parent: parent,
					Start:   unixNano(jsonUint(s.StartTimeUnixNano)),
					End:     unixNano(jsonUint(s.EndTimeUnixNano)),
					Service: service,
					Segment: isSegment(parent, s.Flags, jsonKind(s.Kind)),
				})
			}
		}
	}
	return spans, nil
}

// jsonUint reads a 64-bit integer sent as a JSON number or string; 0 when
// it is neither.
func jsonUint(raw json.RawMessage) uint64 {
	s := strings.Trim(string(raw), `"`)
	n, _ := strconv.ParseUint(s, 10, 64)
	return n
}

// jsonKind reads a span kind sent as an integer or, leniently, as its enum
// name.
func jsonKind(raw json.RawMessage) int32 {
	if n, err := strconv.ParseInt(string(raw), 10, 32); err == nil {
		return int32(n)
	}
	return tracev1.Span_SpanKind_value[jsonString(raw)]
}

// otlpResponse returns the body of a successful OTLP/HTTP answer, an empty
// ExportTraceServiceResponse in the request's format.
func otlpResponse(format string) []byte {
	if format == "json" {
		return []byte("{}")
	}
	return nil
}
