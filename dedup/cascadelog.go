package dedup

import (
	"encoding/hex"
	"time"

	"github.com/getsentry/sentry-go"
	"github.com/getsentry/sentry-go/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracedup/tracedup/rootcause"
)

// Attributes of the log a Transport sends, on the cascade's trace, for each
// error it suppresses as a cascade of another service's report: in Sentry's
// trace view and log search it stands next to the root cause, so the blast
// radius of one failure shows where its report is.
const (
	// LogAttrCascadeOf is the event id of the downstream report the
	// suppressed error stands behind.
	LogAttrCascadeOf = "tracedup.cascade_of"
	// LogAttrEventID is the id of the suppressed event.
	LogAttrEventID = "tracedup.event_id"
	// LogAttrExceptionType is the suppressed error's exception type.
	LogAttrExceptionType = "tracedup.exception_type"
)

// logSettings is what a cascade's log takes from the client's options.
type logSettings struct {
	environment, release string
}

// configureLogs turns the cascade logs on when the client sends logs
// (ClientOptions.EnableLogs), as sentry-go's own logger does.
func (t *Transport) configureLogs(options sentry.ClientOptions) {
	if !options.EnableLogs {
		t.logs.Store(nil)
		return
	}
	t.logs.Store(&logSettings{environment: options.Environment, release: options.Release})
}

// cascadeLog queues, when the client sends logs, a log on e's trace that says
// e was suppressed as a cascade of the downstream report: one Sentry log
// item, queued as the Transport's own and counted in Stats.CascadeLogs (or
// CascadeLogsDropped when the queue has no room: a log is never worth a
// report).
func (t *Transport) cascadeLog(id trace.TraceID, e *rootcause.Error, downstream string) {
	ls := t.logs.Load()
	if ls == nil {
		return
	}
	attrs := map[string]attribute.Value{
		LogAttrCascadeOf:          attribute.StringValue(downstream),
		LogAttrEventID:            attribute.StringValue(e.EventID),
		LogAttrExceptionType:      attribute.StringValue(e.ExceptionType),
		"service.name":            attribute.StringValue(e.Service),
		"sentry.origin":           attribute.StringValue("auto.tracedup"),
		"sentry.message.template": attribute.StringValue("%s: %s suppressed as a cascade of event %s"),
	}
	if ls.environment != "" {
		attrs["sentry.environment"] = attribute.StringValue(ls.environment)
	}
	if ls.release != "" {
		attrs["sentry.release"] = attribute.StringValue(ls.release)
	}
	l := sentry.Log{
		Timestamp:  time.Now(),
		TraceID:    sentry.TraceID(id),
		Level:      sentry.LogLevelInfo,
		Severity:   sentry.LogSeverityInfo,
		Body:       e.Service + ": " + e.ExceptionType + " suppressed as a cascade of event " + downstream,
		Attributes: attrs,
	}
	if span, err := hex.DecodeString(e.SpanID); err == nil && len(span) == 8 {
		copy(l.SpanID[:], span)
	}
	ev := &sentry.Event{Type: "log", Timestamp: l.Timestamp, Logs: []sentry.Log{l}}
	t.emit.pushLog(ev, int64(len(l.Body))+512)
}
