package fakesentry

import (
	"bytes"
	"encoding/json"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/getsentry/sentry-go"

	"github.com/tracedup/tracedup/internal/envelope"
)

// decodeEvent decodes an event item's payload into sentry-go's Event, after
// rewriting the shapes Sentry accepts that sentry-go's types do not (as other
// SDKs send them, @sentry/node among them): timestamps as seconds since the
// epoch, the exception, breadcrumbs and threads as {"values": [...]}, tags
// and request headers as a list of [key, value] pairs, and a request's
// cookies and query string as an object or pairs.
func decodeEvent(raw []byte) (*sentry.Event, error) {
	var m map[string]json.RawMessage
	if err := envelope.DecodeObject(raw, &m); err != nil {
		return nil, err
	}
	for _, key := range []string{"timestamp", "start_timestamp"} {
		if v, ok := m[key]; ok {
			m[key] = rfc3339(v)
		}
	}
	for _, key := range []string{"exception", "breadcrumbs", "threads"} {
		if v, ok := m[key]; ok {
			m[key] = unwrapValues(v)
		}
	}
	if crumbs, ok := m["breadcrumbs"]; ok {
		var list []map[string]json.RawMessage
		if json.Unmarshal(crumbs, &list) == nil {
			for _, c := range list {
				if v, ok := c["timestamp"]; ok {
					c["timestamp"] = rfc3339(v)
				}
			}
			m["breadcrumbs"], _ = json.Marshal(list)
		}
	}
	if tags, ok := m["tags"]; ok {
		m["tags"] = pairsObject(tags)
	}
	if req, ok := m["request"]; ok {
		var r map[string]json.RawMessage
		if json.Unmarshal(req, &r) == nil {
			if h, ok := r["headers"]; ok {
				r["headers"] = pairsObject(h)
			}
			if c, ok := r["cookies"]; ok {
				r["cookies"] = joined(c, "; ")
			}
			if q, ok := r["query_string"]; ok {
				r["query_string"] = joined(q, "&")
			}
			m["request"], _ = json.Marshal(r)
		}
	}
	normalized, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	ev := new(sentry.Event)
	if err := json.Unmarshal(normalized, ev); err != nil {
		return nil, err
	}
	return ev, nil
}

// rfc3339 returns a timestamp in seconds since the epoch as an RFC 3339
// string, and anything else as it is.
func rfc3339(v json.RawMessage) json.RawMessage {
	var f float64
	if t := bytes.TrimSpace(v); len(t) == 0 || t[0] == '"' || json.Unmarshal(t, &f) != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return v
	}
	sec, frac := math.Modf(f)
	s, _ := json.Marshal(time.Unix(int64(sec), int64(math.Round(frac*1e6))*1e3).UTC().Format(time.RFC3339Nano))
	return s
}

// unwrapValues returns the list of {"values": [...]}, and anything else as
// it is.
func unwrapValues(v json.RawMessage) json.RawMessage {
	var w struct {
		Values json.RawMessage `json:"values"`
	}
	if t := bytes.TrimSpace(v); len(t) == 0 || t[0] != '{' || json.Unmarshal(t, &w) != nil || w.Values == nil {
		return v
	}
	return w.Values
}

// pairsObject returns [key, value] pairs as an object, and anything else as
// it is.
func pairsObject(v json.RawMessage) json.RawMessage {
	var pairs [][2]string
	if t := bytes.TrimSpace(v); len(t) == 0 || t[0] != '[' || json.Unmarshal(t, &pairs) != nil {
		return v
	}
	obj := make(map[string]string, len(pairs))
	for _, p := range pairs {
		obj[p[0]] = p[1]
	}
	out, _ := json.Marshal(obj)
	return out
}

// joined returns an object or [key, value] pairs as one string of
// key=value joined by sep (cookies, a query string), and anything else as
// it is.
func joined(v json.RawMessage, sep string) json.RawMessage {
	var pairs [][2]string
	var obj map[string]string
	t := bytes.TrimSpace(v)
	switch {
	case len(t) > 0 && t[0] == '[' && json.Unmarshal(t, &pairs) == nil:
	case len(t) > 0 && t[0] == '{' && json.Unmarshal(t, &obj) == nil:
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			pairs = append(pairs, [2]string{k, obj[k]})
		}
	default:
		return v
	}
	parts := make([]string, len(pairs))
	for i, p := range pairs {
		parts[i] = p[0] + "=" + p[1]
	}
	out, _ := json.Marshal(strings.Join(parts, sep))
	return out
}
