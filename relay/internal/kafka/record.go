package kafka

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracedup/tracedup/internal/envelope"
	"github.com/tracedup/tracedup/relay/internal/ingest"
)

// The record format, version 1. A record's value is what the decision
// needs, as it came: an event item's payload byte for byte (the JSON the SDK
// sent, which the decision stage forwards patched, never re-encoded), or
// the spans of one trace as a JSON array. Everything else rides in headers,
// so that a 1 MiB event is never escaped, copied into a wrapper or scanned
// twice, and a record stays readable with kafka-console-consumer:
//
//	tracedup-v       "1"
//	tracedup-kind    "event" or "spans"
//	tracedup-origin  JSON: the request the item came in (project, auth
//	                 key, X-Sentry-Auth, query, User-Agent, envelope
//	                 header, when the ingest stage accepted it)
//	tracedup-item    an event's item header line, as sent
//
// JSON rather than a binary encoding: the payloads are JSON already, the
// origin and spans are a few hundred bytes beside a 5 KB to 1 MiB event, and
// a version header lets a later format be read beside this one during a
// rolling upgrade. A reader refuses versions it does not know (counted), it
// never guesses.
const (
	headerVersion = "tracedup-v"
	headerKind    = "tracedup-kind"
	headerOrigin  = "tracedup-origin"
	headerItem    = "tracedup-item"

	version   = "1"
	kindEvent = "event"
	kindSpans = "spans"
)

// origin is the request an item came in.
type origin struct {
	Project        string          `json:"project"`
	Key            string          `json:"key"`
	AuthHeader     string          `json:"auth_header,omitempty"`
	Query          string          `json:"query,omitempty"`
	UserAgent      string          `json:"user_agent,omitempty"`
	EnvelopeHeader json.RawMessage `json:"envelope_header,omitempty"`
	// Received is when the ingest stage accepted the request, in Unix
	// nanoseconds: the decision stage measures the delay through Kafka.
	Received int64 `json:"received,omitempty"`
}

func originOf(req *ingest.Request) origin {
	o := origin{Project: req.Project, Key: req.Auth.Key, AuthHeader: req.Auth.Header, Query: req.Auth.Query, UserAgent: req.UserAgent}
	if len(req.EnvelopeHeader) > 0 && json.Valid(req.EnvelopeHeader) {
		o.EnvelopeHeader = req.EnvelopeHeader
	}
	if !req.Received.IsZero() {
		o.Received = req.Received.UnixNano()
	}
	return o
}

func (o origin) request() *ingest.Request {
	r := &ingest.Request{Project: o.Project, Auth: ingest.Auth{Key: o.Key, Header: o.AuthHeader, Query: o.Query},
		UserAgent: o.UserAgent, EnvelopeHeader: o.EnvelopeHeader}
	if o.Received != 0 {
		r.Received = time.Unix(0, o.Received)
	}
	return r
}

// span is one span of a spans record.
type span struct {
	SpanID  string `json:"s"`
	Parent  string `json:"p,omitempty"`
	Start   int64  `json:"b"`
	End     int64  `json:"e,omitempty"`
	Service string `json:"svc,omitempty"`
	Segment bool   `json:"seg,omitempty"`
}

// eventRecord returns the record of an event item: keyed by its trace id
// (the event's trace context, else the envelope header's dynamic sampling
// context), else by its event id so that events of no trace spread over
// the partitions.
func eventRecord(topic string, req *ingest.Request, item envelope.Item) (*kgo.Record, error) {
	o, err := json.Marshal(originOf(req))
	if err != nil {
		return nil, err
	}
	r := &kgo.Record{Topic: topic, Key: eventKey(item.Payload, req.EnvelopeHeader), Value: item.Payload, Headers: []kgo.RecordHeader{
		{Key: headerVersion, Value: []byte(version)},
		{Key: headerKind, Value: []byte(kindEvent)},
		{Key: headerOrigin, Value: o},
	}}
	if len(item.Header) > 0 {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: headerItem, Value: item.Header})
	}
	return r, nil
}

// spansRecords returns one record per trace of spans, keyed by its id.
func spansRecords(topic string, req *ingest.Request, spans []ingest.Span) ([]*kgo.Record, error) {
	o, err := json.Marshal(originOf(req))
	if err != nil {
		return nil, err
	}
	byTrace := make(map[trace.TraceID][]span)
	var order []trace.TraceID
	for _, s := range spans {
		if !s.TraceID.IsValid() || !s.SpanID.IsValid() {
			continue
		}
		if _, ok := byTrace[s.TraceID]; !ok {
			order = append(order, s.TraceID)
		}
		w := span{SpanID: s.SpanID.String(), Start: s.Start.UnixNano(), Service: s.Service, Segment: s.Segment}
		if s.Parent.IsValid() {
			w.Parent = s.Parent.String()
		}
		if !s.End.IsZero() {
			w.End = s.End.UnixNano()
		}
		byTrace[s.TraceID] = append(byTrace[s.TraceID], w)
	}
	records := make([]*kgo.Record, 0, len(order))
	for _, id := range order {
		v, err := json.Marshal(byTrace[id])
		if err != nil {
			return nil, err
		}
		records = append(records, &kgo.Record{Topic: topic, Key: []byte(id.String()), Value: v, Headers: []kgo.RecordHeader{
			{Key: headerVersion, Value: []byte(version)},
			{Key: headerKind, Value: []byte(kindSpans)},
			{Key: headerOrigin, Value: o},
		}})
	}
	return records, nil
}

// eventKey returns an event's partition key: its trace id as 32 lowercase
// hex digits (as spans records are keyed), else its event id, else nil (the
// partitioner then spreads it).
func eventKey(payload, envelopeHeader []byte) []byte {
	var ev struct {
		EventID  string `json:"event_id"`
		Contexts struct {
			Trace struct {
				TraceID string `json:"trace_id"`
			} `json:"trace"`
		} `json:"contexts"`
	}
	_ = json.Unmarshal(payload, &ev)
	if id, ok := traceID(ev.Contexts.Trace.TraceID); ok {
		return []byte(id)
	}
	var h struct {
		EventID string `json:"event_id"`
		Trace   struct {
			TraceID string `json:"trace_id"`
		} `json:"trace"`
	}
	_ = json.Unmarshal(envelopeHeader, &h)
	if id, ok := traceID(h.Trace.TraceID); ok {
		return []byte(id)
	}
	for _, id := range []string{ev.EventID, h.EventID} {
		if id != "" {
			return []byte(id)
		}
	}
	return nil
}

// traceID normalizes a trace id as SDKs send it (any case, with or without
// dashes) to the form trace.TraceID prints.
func traceID(s string) (string, bool) {
	id, err := trace.TraceIDFromHex(strings.ReplaceAll(strings.ToLower(s), "-", ""))
	if err != nil {
		return "", false
	}
	return id.String(), true
}

// errVersion is returned for a record of a version or kind this relay does
// not know.
var errVersion = errors.New("kafka: record of an unknown version or kind")

// decoded is a record read back.
type decoded struct {
	kind  string
	req   *ingest.Request
	item  envelope.Item
	spans []ingest.Span
}

// decode reads a record written by eventRecord or spansRecords.
func decode(r *kgo.Record) (decoded, error) {
	var d decoded
	var v, originJSON, itemHeader []byte
	for _, h := range r.Headers {
		switch h.Key {
		case headerVersion:
			v = h.Value
		case headerKind:
			d.kind = string(h.Value)
		case headerOrigin:
			originJSON = h.Value
		case headerItem:
			itemHeader = h.Value
		}
	}
	if string(v) != version || (d.kind != kindEvent && d.kind != kindSpans) {
		return d, fmt.Errorf("%w: version %q, kind %q", errVersion, v, d.kind)
	}
	var o origin
	if err := json.Unmarshal(originJSON, &o); err != nil {
		return d, fmt.Errorf("kafka: record origin: %w", err)
	}
	d.req = o.request()
	if d.kind == kindEvent {
		if len(itemHeader) == 0 {
			itemHeader = []byte(`{"type":"event"}`)
		}
		d.item = envelope.Item{Type: "event", Header: itemHeader, Payload: r.Value}
		return d, nil
	}
	tid, err := trace.TraceIDFromHex(string(r.Key))
	if err != nil {
		return d, fmt.Errorf("kafka: spans record key: %w", err)
	}
	var ws []span
	if err := json.Unmarshal(r.Value, &ws); err != nil {
		return d, fmt.Errorf("kafka: spans record: %w", err)
	}
	d.spans = make([]ingest.Span, 0, len(ws))
	for _, w := range ws {
		sid, err := trace.SpanIDFromHex(w.SpanID)
		if err != nil {
			continue
		}
		s := ingest.Span{TraceID: tid, SpanID: sid, Start: time.Unix(0, w.Start), Service: w.Service, Segment: w.Segment}
		if w.Parent != "" {
			s.Parent, _ = trace.SpanIDFromHex(w.Parent)
		}
		if w.End != 0 {
			s.End = time.Unix(0, w.End)
		}
		d.spans = append(d.spans, s)
	}
	return d, nil
}
