package sentryotel

import (
	"context"
	"encoding/hex"
	"slices"

	"github.com/getsentry/sentry-go"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracedup/tracedup/internal/ancestry"
	"github.com/tracedup/tracedup/internal/keys"
	"github.com/tracedup/tracedup/internal/reqctx"
)

// Tag names written on stamped events.
const (
	// TagTraceID holds the OTel trace id: 32 lowercase hex digits.
	TagTraceID = keys.TagTraceID
	// TagSpanID holds the OTel span id: 16 lowercase hex digits.
	TagSpanID = keys.TagSpanID
	// TagServiceName holds the span's resource service.name, where known.
	TagServiceName = keys.TagServiceName
)

// defaultFingerprint is sentry's placeholder for its own grouping.
const defaultFingerprint = "{{ default }}"

const serviceNameKey = attribute.Key("service.name")

// WrapOptions returns opts with the hook installed as BeforeSend; a
// BeforeSend already in opts still runs, after the hook, and sees the stamped
// event. It also installs an integration that lets the hook find the span of
// a request that sentryhttp put on the scope, for captures that carry no
// context of their own (hub.CaptureException in a handler). That integration
// is set up after every other, so it takes the place of sentry-go's own
// NewOtelIntegration trace resolver, which resolves the same ids.
func WrapOptions(opts sentry.ClientOptions, options ...Option) sentry.ClientOptions {
	h := newHook(opts.BeforeSend, options)
	h.spans = newSpanCache()
	opts.BeforeSend = h.beforeSend
	userIntegrations := opts.Integrations
	opts.Integrations = func(in []sentry.Integration) []sentry.Integration {
		if userIntegrations != nil {
			in = userIntegrations(in)
		}
		return append(in, resolverIntegration{h})
	}
	return opts
}

// BeforeSend returns the hook, for use as sentry.ClientOptions.BeforeSend.
// next, when not nil, runs after the hook on the stamped event and its result
// is returned. The hook alone finds the span in the hint's Context or
// Request; use [WrapOptions] to also cover captures without either.
//
// The hook returns nil for a nil event and leaves transactions and events
// with no valid span unchanged. It is safe for concurrent use.
func BeforeSend(next func(*sentry.Event, *sentry.EventHint) *sentry.Event, options ...Option) func(*sentry.Event, *sentry.EventHint) *sentry.Event {
	return newHook(next, options).beforeSend
}

// CaptureException captures err with ctx in the event hint, so the hook
// finds the active span. It uses the hub in ctx, else the current hub, and
// returns the event id, or nil when the event was not sent (no client,
// sampled out or dropped by a hook). Unlike hub.CaptureException it does not
// update the hub's LastEventID.
//
// A web framework's own context may stand for the request's without reaching
// it: a *gin.Context answers Value from the request's context only with the
// engine's ContextWithFallback, which is off by default. When ctx has no
// valid span, CaptureException looks for the *http.Request behind ctx, and
// if it finds one captures with that request's context, whose span and hub
// it then uses (a hub in ctx itself still comes first). It checks exactly
// two things: ctx.Value(0) being a non-nil *http.Request (gin up to v1.9;
// from v1.10 gin answers only its own typed key, which cannot be named
// without importing gin), and ctx being a non-nil pointer to a struct with
// an exported field Request of type *http.Request declared on it (the shape
// of *gin.Context in every version). echo's context is not a
// context.Context: pass c.Request().Context().
func CaptureException(ctx context.Context, err error) *sentry.EventID {
	if ctx == nil {
		ctx = context.Background()
	}
	hub := sentry.GetHubFromContext(ctx)
	if !trace.SpanContextFromContext(ctx).IsValid() {
		if r := reqctx.Request(ctx); r != nil && r.Context() != nil {
			ctx = r.Context()
			if hub == nil {
				hub = sentry.GetHubFromContext(ctx)
			}
		}
	}
	if hub == nil {
		hub = sentry.CurrentHub()
	}
	client, scope := hub.Client(), hub.Scope()
	if client == nil || scope == nil {
		return nil
	}
	return client.CaptureException(err, &sentry.EventHint{Context: ctx, OriginalException: err}, scope)
}

type hook struct {
	cfg   config
	next  func(*sentry.Event, *sentry.EventHint) *sentry.Event
	spans *spanCache // nil unless the resolver integration is installed
}

func newHook(next func(*sentry.Event, *sentry.EventHint) *sentry.Event, options []Option) *hook {
	return &hook{cfg: newConfig(options), next: next}
}

func (h *hook) beforeSend(event *sentry.Event, hint *sentry.EventHint) *sentry.Event {
	if event == nil {
		return nil
	}
	if event.Type != "transaction" {
		if s, ok := h.findSpan(event, hint); ok {
			h.stamp(event, s)
			if isErrorEvent(event) {
				diagnosePropagator()
			}
		} else if id, _ := event.Contexts[keys.ContextTrace][keys.TraceIDKey].(string); id == "" {
			diagnoseMissing(event, hint) // no trace id that the deduplicator reads
		}
	}
	if h.next != nil {
		return h.next(event, hint)
	}
	return event
}

// spanInfo is what the hook writes on an event.
type spanInfo struct {
	traceID trace.TraceID
	spanID  trace.SpanID
	parent  trace.SpanID // zero for a root span or where unknown
	service string
	ended   bool // the span had ended when the error was captured
}

func infoFromSpan(span trace.Span) (spanInfo, bool) {
	sc := span.SpanContext()
	if !sc.IsValid() {
		return spanInfo{}, false
	}
	info := spanInfo{traceID: sc.TraceID(), spanID: sc.SpanID()}
	if ro, ok := span.(sdktrace.ReadOnlySpan); ok {
		if p := ro.Parent(); p.IsValid() {
			info.parent = p.SpanID()
		}
		info.ended = !ro.EndTime().IsZero()
		if res := ro.Resource(); res != nil {
			if v, ok := res.Set().Value(serviceNameKey); ok {
				info.service = v.AsString()
			}
		}
	}
	return info, true
}

func (h *hook) findSpan(event *sentry.Event, hint *sentry.EventHint) (spanInfo, bool) {
	if hint != nil {
		if hint.Context != nil {
			if info, ok := infoFromSpan(trace.SpanFromContext(hint.Context)); ok {
				bind(hint.Context)
				return info, true
			}
			// A framework's context given to a log call, as
			// slog.ErrorContext(c, ...) with a *gin.Context.
			if r := reqctx.Request(hint.Context); r != nil && r.Context() != nil {
				if info, ok := infoFromSpan(trace.SpanFromContext(r.Context())); ok {
					bind(r.Context())
					return info, true
				}
			}
		}
		if hint.Request != nil {
			if info, ok := infoFromSpan(trace.SpanFromContext(hint.Request.Context())); ok {
				bind(hint.Request.Context())
				return info, true
			}
		}
	}
	if h.spans == nil {
		return spanInfo{}, false
	}
	// The resolver installed by WrapOptions saw the span when the scope was
	// applied, and wrote its ids into the trace context as strings.
	tc := event.Contexts[keys.ContextTrace]
	sid, _ := tc[keys.SpanIDKey].(string)
	tid, _ := tc[keys.TraceIDKey].(string)
	spanID, err := trace.SpanIDFromHex(sid)
	if err != nil {
		return spanInfo{}, false
	}
	traceID, err := trace.TraceIDFromHex(tid)
	if err != nil {
		return spanInfo{}, false
	}
	return h.spans.get(traceID, spanID)
}

func (h *hook) stamp(event *sentry.Event, s spanInfo) {
	var buf [64]byte
	hex.Encode(buf[0:32], s.traceID[:])
	hex.Encode(buf[32:48], s.spanID[:])
	n := 48
	if s.parent.IsValid() {
		hex.Encode(buf[48:64], s.parent[:])
		n = 64
	}

	if event.Contexts == nil {
		event.Contexts = make(map[string]sentry.Context, 1)
	}
	tc := event.Contexts[keys.ContextTrace]
	if tc == nil {
		tc = make(sentry.Context, 3)
		event.Contexts[keys.ContextTrace] = tc
	}

	// Where a trace resolver already wrote these ids into the trace context,
	// reuse its strings: each string, and each boxing of one into the
	// context's interface values, is an allocation.
	traceID, keepTrace := equalString(tc[keys.TraceIDKey], buf[0:32])
	spanID, keepSpan := equalString(tc[keys.SpanIDKey], buf[32:48])
	_, keepParent := equalString(tc[keys.ParentSpanIDKey], buf[48:n])
	keepParent = keepParent || n == 48
	if !keepTrace || !keepSpan || !keepParent {
		// One allocation holds every id; the rest are substrings of it.
		ids := string(buf[:n])
		if !keepTrace {
			traceID = ids[0:32]
			tc[keys.TraceIDKey] = traceID
		}
		if !keepSpan {
			spanID = ids[32:48]
			tc[keys.SpanIDKey] = spanID
		}
		if !keepParent {
			tc[keys.ParentSpanIDKey] = ids[48:64]
		}
	}
	if n == 48 {
		// A parent left by sentry-go's own propagation context belongs to
		// another trace.
		delete(tc, keys.ParentSpanIDKey)
	}

	if ancestry.Enabled() {
		stampSpans(event, s)
	}

	if event.Tags == nil {
		event.Tags = make(map[string]string, 3)
	}
	event.Tags[TagTraceID] = traceID
	event.Tags[TagSpanID] = spanID
	if s.service != "" {
		event.Tags[TagServiceName] = s.service
	}

	if h.cfg.traceFingerprint && !slices.Contains(event.Fingerprint, traceID) {
		if len(event.Fingerprint) == 0 {
			event.Fingerprint = []string{defaultFingerprint, traceID}
		} else {
			// A new array: the old one may be shared with the scope.
			fp := make([]string, len(event.Fingerprint)+1)
			copy(fp, event.Fingerprint)
			fp[len(fp)-1] = traceID
			event.Fingerprint = fp
		}
	}
}

// stampSpans writes, in the context keys.ContextTracedup, what the
// SpanProcessor recorded of the event's span: the chain of spans that
// enclose it, nearest first from its parent, when it knows more than the
// parent; and the child of the span that started last before the capture
// (sixteen zeros when none had, "ended" when the span itself had ended: its
// work was over, and what its children did explains nothing captured now).
func stampSpans(event *sentry.Event, s spanInfo) {
	var ctx sentry.Context
	if s.parent.IsValid() {
		var chainBuf [ancestry.MaxDepth]trace.SpanID
		chain := ancestry.Append(append(chainBuf[:0], s.parent), s.parent)
		if len(chain) > 1 { // else the parent is in the trace context already
			var textBuf [ancestry.MaxDepth * 17]byte
			text := textBuf[:0]
			for i, id := range chain {
				if i > 0 {
					text = append(text, ',')
				}
				text = hex.AppendEncode(text, id[:])
			}
			ctx = sentry.Context{keys.AncestorsKey: string(text)}
		}
	}
	last, ok := ancestry.LastChild(s.spanID)
	if ok || s.ended {
		if ctx == nil {
			ctx = make(sentry.Context, 1)
		}
		if s.ended {
			ctx[keys.LastChildKey] = keys.SpanEnded
		} else {
			ctx[keys.LastChildKey] = last.String()
		}
	}
	if ctx != nil {
		event.Contexts[keys.ContextTracedup] = ctx
	}
}

// equalString returns v as a string and true when v is a string equal to b.
func equalString(v any, b []byte) (string, bool) {
	s, ok := v.(string)
	return s, ok && s == string(b)
}

// resolverIntegration hands sentry-go a trace resolver that remembers the
// spans it resolves, so the hook can stamp captures whose only link to the
// span is the request on the scope.
type resolverIntegration struct{ h *hook }

func (resolverIntegration) Name() string { return "tracedup.sentryotel" }

func (i resolverIntegration) SetupOnce(client *sentry.Client) {
	client.SetExternalContextTraceResolver(i.h.resolve)
}

func (h *hook) resolve(ctx context.Context) (sentry.TraceID, sentry.SpanID, bool) {
	if ctx == nil {
		return sentry.TraceID{}, sentry.SpanID{}, false
	}
	info, ok := infoFromSpan(trace.SpanFromContext(ctx))
	if !ok {
		return sentry.TraceID{}, sentry.SpanID{}, false
	}
	bind(ctx)
	h.spans.put(info)
	return sentry.TraceID(info.traceID), sentry.SpanID(info.spanID), true
}

// bind tells a served call that an adapter began before its span existed
// (dedup's Incoming, left in the request's context) the span that ctx, a
// context derived from the request's, holds: the call is then tracked from
// this error on.
func bind(ctx context.Context) {
	if b, ok := ctx.Value(keys.CallKey{}).(keys.Binder); ok {
		b.Bind(ctx)
	}
}
