package relay

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/getsentry/sentry-go"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/internal/keys"
	"github.com/tracedup/tracedup/relay/internal/ingest"
)

// The attachments on which what an event needs to be forwarded as it came
// rides through the deduplicator, so that its byte budget counts it and
// nothing is kept beside it: the event item's JSON as the SDK sent it (what
// goes upstream is that JSON, patched, never a re-encoding that would lose
// what sentry-go's types do not know), and the request it came in.
const (
	carrierType = "application/x-tracedup-original-event"
	originType  = "application/x-tracedup-origin"
)

// origin is the request an event came in, as its attachment carries it.
type origin struct {
	Project        string          `json:"project"`
	Key            string          `json:"key"`
	AuthHeader     string          `json:"auth_header,omitempty"`
	Query          string          `json:"query,omitempty"`
	UserAgent      string          `json:"user_agent,omitempty"`
	EnvelopeHeader json.RawMessage `json:"envelope_header,omitempty"`
}

func originOf(req *ingest.Request) origin {
	o := origin{Project: req.Project, Key: req.Auth.Key, AuthHeader: req.Auth.Header, Query: req.Auth.Query, UserAgent: req.UserAgent}
	if json.Valid(req.EnvelopeHeader) {
		o.EnvelopeHeader = req.EnvelopeHeader
	}
	return o
}

func (o origin) request() *ingest.Request {
	return &ingest.Request{Project: o.Project, Auth: ingest.Auth{Key: o.Key, Header: o.AuthHeader, Query: o.Query},
		UserAgent: o.UserAgent, EnvelopeHeader: o.EnvelopeHeader}
}

// carried returns the original JSON and the origin an event carries.
func carried(ev *sentry.Event) (raw []byte, o origin, ok bool) {
	var haveRaw, haveOrigin bool
	for _, a := range ev.Attachments {
		switch {
		case a == nil:
		case a.ContentType == carrierType:
			raw, haveRaw = a.Payload, true
		case a.ContentType == originType:
			haveOrigin = json.Unmarshal(a.Payload, &o) == nil
		}
	}
	return raw, o, haveRaw && haveOrigin
}

// wireEvent is what the relay reads of an SDK's event: what the deduplicator
// decides on. Every SDK's shapes are accepted: a timestamp as seconds or RFC
// 3339, the exception as {"values": [...]} or a list, tags as an object or a
// list of pairs, the message as a string or a logentry.
type wireEvent struct {
	EventID    string                    `json:"event_id"`
	Timestamp  json.RawMessage           `json:"timestamp"`
	Level      string                    `json:"level"`
	Type       string                    `json:"type"`
	Message    json.RawMessage           `json:"message"`
	Logentry   *logentry                 `json:"logentry"`
	Exception  json.RawMessage           `json:"exception"`
	Tags       json.RawMessage           `json:"tags"`
	Contexts   map[string]map[string]any `json:"contexts"`
	ServerName string                    `json:"server_name"`
	Release    string                    `json:"release"`
}

type logentry struct {
	Formatted string `json:"formatted"`
	Message   string `json:"message"`
}

type wireException struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// errNotAnEvent is returned for a payload that is not a JSON object.
var errNotAnEvent = errors.New("relay: event payload is not a JSON object")

// decodeEvent reads raw, an event item's payload, into the sentry.Event the
// deduplicator decides on: the fields rootcause.FromEvent reads, and the
// original JSON and the request it came in on attachments. traceFallback is
// the envelope header's trace id (its dynamic sampling context), for events
// without a trace context; req's project names the service where the event
// names none.
func decodeEvent(raw []byte, traceFallback string, req *ingest.Request) (*sentry.Event, error) {
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		return nil, errNotAnEvent
	}
	var w wireEvent
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, err
	}
	ev := &sentry.Event{
		EventID:   sentry.EventID(strings.ReplaceAll(strings.ToLower(w.EventID), "-", "")),
		Level:     sentry.Level(w.Level),
		Type:      w.Type,
		Timestamp: decodeTime(w.Timestamp),
		Tags:      decodeTags(w.Tags),
		Contexts:  make(map[string]sentry.Context, 2),
	}
	if err := json.Unmarshal(w.Message, &ev.Message); err != nil && w.Logentry != nil {
		ev.Message = w.Logentry.Formatted
		if ev.Message == "" {
			ev.Message = w.Logentry.Message
		}
	}
	var values struct {
		Values []wireException `json:"values"`
	}
	if err := json.Unmarshal(w.Exception, &values); err != nil {
		_ = json.Unmarshal(w.Exception, &values.Values)
	}
	for _, x := range values.Values {
		ev.Exception = append(ev.Exception, sentry.Exception{Type: x.Type, Value: x.Value})
	}
	for _, name := range []string{keys.ContextTrace, keys.ContextTracedup} {
		if c := w.Contexts[name]; c != nil {
			ev.Contexts[name] = sentry.Context(c)
		}
	}
	if tc := ev.Contexts[keys.ContextTrace]; tc == nil && traceFallback != "" {
		ev.Contexts[keys.ContextTrace] = sentry.Context{keys.TraceIDKey: traceFallback}
	}
	if ev.Tags[keys.TagServiceName] == "" {
		ev.Tags[keys.TagServiceName] = serviceOf(&w, req.Project)
	}
	o, err := json.Marshal(originOf(req))
	if err != nil {
		return nil, err
	}
	ev.Attachments = []*sentry.Attachment{{ContentType: carrierType, Payload: raw}, {ContentType: originType, Payload: o}}
	return ev, nil
}

// serviceOf names the service that sent w: its OTel resource's service.name
// (the Node and Python SDKs' OpenTelemetry contexts), else its server name,
// else its release, else the project.
func serviceOf(w *wireEvent, project string) string {
	if r, ok := w.Contexts["otel"]["resource"].(map[string]any); ok {
		if s, _ := r["service.name"].(string); s != "" {
			return s
		}
	}
	switch {
	case w.ServerName != "":
		return w.ServerName
	case w.Release != "":
		return w.Release
	}
	return "project " + project
}

// decodeTime reads a timestamp as seconds since the epoch (a number, or a
// string of one) or RFC 3339; the zero time when neither.
func decodeTime(raw json.RawMessage) time.Time {
	var f float64
	if err := json.Unmarshal(raw, &f); err == nil {
		sec := int64(f)
		return time.Unix(sec, int64((f-float64(sec))*1e9)).UTC()
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return time.Time{}
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		sec := int64(f)
		return time.Unix(sec, int64((f-float64(sec))*1e9)).UTC()
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}

// decodeTags reads tags as an object or as a list of [key, value] pairs,
// keeping string values.
func decodeTags(raw json.RawMessage) map[string]string {
	tags := make(map[string]string)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err == nil {
		for k, v := range m {
			if s, ok := v.(string); ok {
				tags[k] = s
			}
		}
		return tags
	}
	var pairs [][]any
	if err := json.Unmarshal(raw, &pairs); err == nil {
		for _, p := range pairs {
			if len(p) == 2 {
				k, _ := p[0].(string)
				v, _ := p[1].(string)
				if k != "" {
					tags[k] = v
				}
			}
		}
	}
	return tags
}

// patch returns the original JSON of ev with what the deduplicator wrote on
// it: the tags dedup.suppressed and dedup.cascade_of, and the context dedup.
// Everything else stays as the SDK sent it.
func patch(raw []byte, ev *sentry.Event) ([]byte, error) {
	add := make(map[string]string, 2)
	for _, k := range []string{dedup.TagSuppressed, dedup.TagCascadeOf} {
		if v := ev.Tags[k]; v != "" {
			add[k] = v
		}
	}
	ctx, annotated := ev.Contexts[dedup.ContextKey]
	if len(add) == 0 && !annotated {
		return raw, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	if len(add) > 0 {
		tags, err := patchTags(m["tags"], add)
		if err != nil {
			return nil, err
		}
		m["tags"] = tags
	}
	if annotated {
		contexts := map[string]json.RawMessage{}
		if c := m["contexts"]; len(c) > 0 && string(c) != "null" {
			if err := json.Unmarshal(c, &contexts); err != nil {
				return nil, err
			}
		}
		b, err := json.Marshal(ctx)
		if err != nil {
			return nil, err
		}
		contexts[dedup.ContextKey] = b
		if m["contexts"], err = json.Marshal(contexts); err != nil {
			return nil, err
		}
	}
	return json.Marshal(m)
}

// patchTags adds add to tags, an object or a list of pairs as the SDK sent
// them.
func patchTags(tags json.RawMessage, add map[string]string) (json.RawMessage, error) {
	if len(tags) > 0 && tags[0] == '[' {
		var pairs []json.RawMessage
		if err := json.Unmarshal(tags, &pairs); err != nil {
			return nil, err
		}
		for k, v := range add {
			p, _ := json.Marshal([2]string{k, v})
			pairs = append(pairs, p)
		}
		return json.Marshal(pairs)
	}
	m := map[string]json.RawMessage{}
	if len(tags) > 0 && string(tags) != "null" {
		if err := json.Unmarshal(tags, &m); err != nil {
			return nil, err
		}
	}
	for k, v := range add {
		m[k], _ = json.Marshal(v)
	}
	return json.Marshal(m)
}
