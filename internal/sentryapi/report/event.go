package report

import (
	"strings"

	"github.com/tracedup/tracedup/internal/keys"
	"github.com/tracedup/tracedup/internal/sentryapi"
	"github.com/tracedup/tracedup/rootcause"
)

// Event is one error event as the report sees it: what a strategy sees, plus
// the Sentry issue (group) it belongs to, which rootcause.Error does not hold.
type Event struct {
	rootcause.Error
	// IssueID is Sentry's groupID: the issue the event is grouped into.
	IssueID string
	// Project is the project slug, where known.
	Project string
	// Title is the event's title, as the issue list shows it.
	Title string
}

// FromAPI converts an event read from the API. Event is left nil.
//
//   - TraceID: the otel.trace_id tag that sentryotel stamps, else Sentry's own
//     trace tag, else contexts.trace.trace_id; lower-cased.
//   - SpanID: the otel.span_id tag, else contexts.trace.span_id.
//   - ParentSpanID: contexts.trace.parent_span_id (full events, Discover).
//   - Service: the service.name tag.
//   - ExceptionType and Message: the outermost exception where the API gave
//     it, else the title split at the first ": " ("*main.PaymentDeclined:
//     card declined"); a title without ": " is the type when that is all
//     there is, and the message as well.
func FromAPI(e sentryapi.Event) Event {
	tag := func(k string) string { v, _ := e.Tag(k); return strings.TrimSpace(v) }
	ev := Event{
		Error: rootcause.Error{
			EventID:      e.EventID,
			TraceID:      strings.ToLower(firstNonEmpty(tag(keys.TagTraceID), tag(keys.SentryTraceTag), e.Trace.TraceID)),
			SpanID:       strings.ToLower(firstNonEmpty(tag(keys.TagSpanID), e.Trace.SpanID)),
			ParentSpanID: strings.ToLower(e.Trace.ParentSpanID),
			Service:      tag(keys.TagServiceName),
			Timestamp:    e.DateCreated,
		},
		IssueID: e.GroupID,
		Project: e.Project,
		Title:   e.Title,
	}
	typ, msg := splitTitle(e.Title)
	ev.ExceptionType = firstNonEmpty(e.ExceptionType, typ)
	ev.Message = firstNonEmpty(e.ExceptionValue, e.Message, msg)
	return ev
}

// splitTitle splits "<type>: <value>". A title without ": " is returned as
// the type and the message both: it may be either, and neither is lost.
func splitTitle(title string) (typ, msg string) {
	if t, m, ok := strings.Cut(title, ": "); ok && t != "" && !strings.ContainsAny(t, " \t") {
		return t, m
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
