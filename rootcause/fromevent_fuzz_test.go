package rootcause_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/getsentry/sentry-go"

	"github.com/tracedup/tracedup/rootcause"
)

// FuzzFromEvent: an event can come from anywhere (a relay, a replay, the
// Sentry web API), so FromEvent reads foreign input. Whatever JSON decodes
// into a sentry.Event, FromEvent must not panic, and what it returns must
// come from the event.
func FuzzFromEvent(f *testing.F) {
	for _, seed := range []string{
		`{}`,
		`{"event_id":"e1","tags":{"otel.trace_id":"0af7651916cd43dd8448eb211c80319c","otel.span_id":"00000000000000c3","service.name":"payment"},` +
			`"contexts":{"trace":{"trace_id":"0af7651916cd43dd8448eb211c80319c","span_id":"00000000000000c3","parent_span_id":"00000000000000b2"},` +
			`"tracedup":{"ancestors":"00000000000000b2,00000000000000a1"}},` +
			`"exception":[{"type":"Inner","value":"inner"},{"type":"*main.PaymentDeclined","value":"card declined"}]}`,
		`{"contexts":{"trace":{"trace_id":"00000000000000000000000000000000","span_id":7}}}`,
		`{"contexts":{"trace":{"trace_id":"abc","span_id":"s","parent_span_id":"p"}},"tags":{"otel.span_id":"other"}}`,
		`{"contexts":{"trace":null,"tracedup":{"ancestors":[1,2]}},"exception":[{}],"message":"m"}`,
		`{"tags":{"otel.trace_id":""},"contexts":{"tracedup":{"ancestors":",,"}}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var ev sentry.Event
		if json.Unmarshal(data, &ev) != nil {
			return
		}
		e := rootcause.FromEvent(&ev)
		if e.Event != &ev {
			t.Fatalf("Event = %p, want the event given, %p", e.Event, &ev)
		}
		if e.EventID != string(ev.EventID) || !e.Timestamp.Equal(ev.Timestamp) {
			t.Fatalf("EventID %q, Timestamp %v: not the event's %q, %v", e.EventID, e.Timestamp, ev.EventID, ev.Timestamp)
		}
		// The trace id is the tag, else the trace context's string.
		tc := ev.Contexts["trace"]
		ctxString := func(key string) string {
			s, _ := tc[key].(string)
			if strings.Trim(s, "0") == "" {
				return ""
			}
			return s
		}
		switch tag := ev.Tags["otel.trace_id"]; {
		case tag != "":
			if e.TraceID != tag {
				t.Fatalf("TraceID %q, want the tag %q", e.TraceID, tag)
			}
		case e.TraceID != ctxString("trace_id"):
			t.Fatalf("TraceID %q, want the context's %q", e.TraceID, ctxString("trace_id"))
		}
		if tag := ev.Tags["otel.span_id"]; tag != "" && e.SpanID != tag {
			t.Fatalf("SpanID %q, want the tag %q", e.SpanID, tag)
		}
		// A parent is only ever the trace context's, and only for its span.
		if e.ParentSpanID != "" {
			if e.ParentSpanID != ctxString("parent_span_id") {
				t.Fatalf("ParentSpanID %q not from the trace context", e.ParentSpanID)
			}
			if cs := ctxString("span_id"); cs != "" && cs != e.SpanID {
				t.Fatalf("ParentSpanID %q taken from span %q for span %q", e.ParentSpanID, cs, e.SpanID)
			}
		}
		if e.IsRootSpan() != (e.ParentSpanID == "") {
			t.Fatal("IsRootSpan disagrees with ParentSpanID")
		}
		if n := len(ev.Exception); n > 0 {
			if e.ExceptionType != ev.Exception[n-1].Type {
				t.Fatalf("ExceptionType %q, want the outermost %q", e.ExceptionType, ev.Exception[n-1].Type)
			}
		} else if e.ExceptionType != "" || e.Message != ev.Message {
			t.Fatalf("no exception: type %q, message %q; want \"\", %q", e.ExceptionType, e.Message, ev.Message)
		}
		// What a strategy does with it must not panic either.
		if _, err := rootcause.Incidents(rootcause.Default(), []rootcause.Error{e, e}); err != nil {
			t.Fatalf("Default on the error twice: %v", err)
		}

		// Round trip: the event re-encoded and decoded reads the same.
		again, err := json.Marshal(&ev)
		if err != nil {
			return
		}
		var ev2 sentry.Event
		if err := json.Unmarshal(again, &ev2); err != nil {
			return
		}
		e2 := rootcause.FromEvent(&ev2)
		e.Event, e2.Event = nil, nil
		if e.TraceID != e2.TraceID || e.SpanID != e2.SpanID || e.ParentSpanID != e2.ParentSpanID ||
			e.Service != e2.Service || e.ExceptionType != e2.ExceptionType || strings.Join(e.Ancestors, ",") != strings.Join(e2.Ancestors, ",") {
			t.Fatalf("after a JSON round trip:\n%+v\nwant\n%+v", e2, e)
		}
	})
}
