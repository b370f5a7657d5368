package dedup

import (
	"context"
	"encoding/hex"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"go.opentelemetry.io/otel/trace"

	"github.com/tracedup/tracedup/internal/ancestry"
	"github.com/tracedup/tracedup/internal/keys"
	"github.com/tracedup/tracedup/rootcause"
)

// maxCalls bounds the operations whose last call is recorded per trace.
const maxCalls = 16

// maxCallSpans bounds the spans of a recorded call: its own and the nearest
// that enclose it, where the errors it explains are captured. An error
// captured on a span further out is not explained, and so is sent.
const maxCallSpans = 8

// maxCallsPerTrace bounds the calls of one trace served at once in this
// process; past it a call is not tracked (see [WithMaxCalls]).
const maxCallsPerTrace = 64

// call is one outgoing call whose last outcome is recorded.
type call struct {
	operation uint64       // a hash of what was called
	caller    trace.SpanID // the span the call was made from
	reported  string       // the event id the callee acknowledged
	// spans are the call's span and the spans enclosing it, nearest first.
	spans []trace.SpanID
}

// callsBytes estimates the heap of a trace's recorded calls.
func callsBytes(calls []call) int64 {
	n := int64(24 + 64) // the slice and the memory's entry
	for i := range calls {
		n += int64(unsafe.Sizeof(calls[i])) + int64(len(calls[i].reported)) + 24 + int64(len(calls[i].spans))*8
	}
	return n
}

// Incoming is a call this service is serving, as the acknowledgement sees it:
// adapters ask it, when they write the response, whether an error event of
// the call reached the Transport. Its methods are safe for concurrent use and
// on a nil *Incoming, which is what calls without a trace get. The zero
// Incoming tracks nothing, like a nil one, until [Incoming.Begin].
type Incoming struct {
	traceID  trace.TraceID
	spanID   trace.SpanID
	reported atomic.Pointer[string]
	older    *Incoming // the trace's next older live call, guarded by the shard
	live     bool      // guarded by the shard
	shard    *shard    // nil while it tracks nothing
	t        *Transport
	// waiting says that the call was begun by BeginContext before its span
	// existed, and waits for Bind; ended that End was called. mu guards
	// them and the step from waiting to tracking.
	mu      sync.Mutex
	waiting atomic.Bool
	ended   bool
}

// Incoming starts tracking a call this service serves, whose span is in ctx
// (the server span otelhttp or otelgrpc started). Call End when the call is
// done. It returns nil when ctx has no valid span, or when the Transport
// tracks as many calls as it may ([WithMaxCalls]).
func (t *Transport) Incoming(ctx context.Context) *Incoming {
	in := new(Incoming)
	if !in.Begin(ctx, t) {
		return nil
	}
	return in
}

// Begin is [Transport.Incoming] in memory the caller owns, for adapters that
// keep an Incoming per request in pooled state of their own rather than
// allocate one per call. It starts tracking the call whose span is in ctx
// and reports whether it does: when ctx has no valid span, or the Transport
// tracks as many calls as [WithMaxCalls] allows (or 64 of the trace), in
// tracks nothing (its methods do what they do on a nil *Incoming), and the
// call is counted in Stats.Untracked: it acknowledges nothing.
//
// in must be a zero Incoming or one whose End has returned; one still
// tracking a call stops tracking it first. After End the Transport holds no
// reference to in, so the owner may Begin it again for another call; it
// must not use it for the ended call any more (a Reported or End for that
// call would see the new one). Unlike its other methods, Begin must not run
// concurrently with another method of in.
func (in *Incoming) Begin(ctx context.Context, t *Transport) bool {
	in.reset()
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return false
	}
	return in.track(t, sc.TraceID(), sc.SpanID())
}

// reset makes in track nothing, as a zero Incoming.
func (in *Incoming) reset() {
	if in.shard != nil {
		in.unlink()
	}
	in.reported.Store(nil)
	in.shard, in.t = nil, nil
	in.waiting.Store(false)
	in.ended = false
}

// BeginContext is [Incoming.Begin] for a call whose span may start only
// inside the handler it serves: a router's own OTel middleware (otelgin
// inside a gin engine, echo's) starts it after an outer net/http
// middleware has run. When ctx has a valid span it begins tracking as Begin
// does and returns ctx. Otherwise it returns a context derived from ctx
// that carries in: serve the call with it, and in starts tracking the call
// when the first error event captured in a context derived from it reaches
// sentryotel's hook, which calls [Incoming.Bind] with the span it found. It
// reports whether in tracks or waits for the call. The same rules as
// Begin's apply to in; a call that ends before any error tracks nothing
// and costs the Transport nothing.
func (in *Incoming) BeginContext(ctx context.Context, t *Transport) (context.Context, bool) {
	if in.Begin(ctx, t) {
		return ctx, true
	}
	if trace.SpanContextFromContext(ctx).IsValid() {
		return ctx, false // a span, but no room: not tracked
	}
	in.t = t
	in.waiting.Store(true)
	return context.WithValue(ctx, keys.CallKey{}, keys.Binder(in)), true
}

// Bind starts tracking a call that [Incoming.BeginContext] began before its
// span existed, with the span in ctx: the span an error of the call was
// captured on. The call is taken to be served in the outermost span of this
// process known to enclose it (with sentryotel's span processor; else that
// span's parent). sentryotel's hook calls it; it is safe to call more than
// once and concurrently with the other methods: only the first call with a
// valid span, before End, counts.
func (in *Incoming) Bind(ctx context.Context) {
	if in == nil || !in.waiting.Load() {
		return
	}
	span := trace.SpanFromContext(ctx)
	sc := span.SpanContext()
	if !sc.IsValid() {
		return
	}
	chain := spanChain(span)
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.ended || !in.waiting.CompareAndSwap(true, false) {
		return
	}
	in.track(in.t, sc.TraceID(), chain[len(chain)-1])
}

// track starts tracking the call of span in trace id with t, unless t tracks
// as many calls as it may.
func (in *Incoming) track(t *Transport, id trace.TraceID, span trace.SpanID) bool {
	if t.liveCalls.Add(1) > int64(t.cfg.maxCalls) {
		t.liveCalls.Add(-1)
		t.untracked.Add(1)
		return false
	}
	s := t.shardFor(id)
	s.mu.Lock()
	head := s.live[id]
	n := 0
	for c := head; c != nil && n < maxCallsPerTrace; c = c.older {
		n++
	}
	if n >= maxCallsPerTrace {
		s.mu.Unlock()
		t.liveCalls.Add(-1)
		t.untracked.Add(1)
		return false
	}
	in.traceID, in.spanID, in.t, in.shard = id, span, t, s
	in.older, in.live = head, true
	s.live[in.traceID] = in
	s.mu.Unlock()
	return true
}

// Reported returns the event id to acknowledge the call with, or "" when no
// error event of the call reached the Transport (yet), or none did while
// the Transport was sure it would get through. It is the id of the event
// captured or, when that event was a cascade, of the event it stands behind.
func (in *Incoming) Reported() string {
	if in == nil {
		return ""
	}
	if id := in.reported.Load(); id != nil {
		return *id
	}
	return ""
}

// acknowledge records id as the call's acknowledgement, unless it has one.
func (in *Incoming) acknowledge(id string) { in.reported.CompareAndSwap(nil, &id) }

// End stops tracking the call and forgets the calls made while serving it:
// an error captured after its request is over (by a background goroutine of
// the handler, say) does not follow from them. When no other call of its
// trace is being served in this process, the in-process cascade of the trace
// is complete: the Transport then decides the trace a grace later
// (WithRequestGrace) rather than when its window ends. It is safe to call
// more than once.
func (in *Incoming) End() {
	if in == nil {
		return
	}
	// A Bind may be linking the call right now: settle with it first.
	in.mu.Lock()
	in.ended = true
	in.waiting.Store(false)
	tracked := in.shard != nil
	in.mu.Unlock()
	if tracked {
		in.unlink()
	}
}

// unlink removes in from its trace's live calls, forgets the calls made
// while serving it, and, when it was the trace's last live call, tells the
// trace's window.
func (in *Incoming) unlink() {
	s := in.shard
	s.mu.Lock()
	defer s.mu.Unlock()
	// Most traces recorded no call (their calls succeeded): spare them
	// the clock.
	if calls, ok := s.calls.getIfAny(in.traceID); ok {
		made := func(c call) bool { return slices.Contains(c.spans, in.spanID) }
		if slices.ContainsFunc(calls, made) {
			s.calls.put(in.traceID, time.Now(), slices.DeleteFunc(slices.Clone(calls), made))
		}
	}
	if !in.live {
		return // ended before
	}
	in.live = false
	in.t.liveCalls.Add(-1)
	head := s.live[in.traceID]
	if head == in {
		if in.older == nil {
			delete(s.live, in.traceID)
			if in.t.windows.Load() > 0 {
				in.t.requestEnded(s, in.traceID)
			}
			return
		}
		s.live[in.traceID] = in.older
	} else {
		for c := head; c != nil; c = c.older {
			if c.older == in {
				c.older = in.older
				break
			}
		}
	}
	in.older = nil
}

// callOf returns the call being served that e was captured in: the newest
// whose span is e's span or encloses it, else the only one of the trace in
// flight, else nil. s.mu is held.
func (s *shard) callOf(id trace.TraceID, e *rootcause.Error) *Incoming {
	head := s.live[id]
	if head == nil {
		return nil
	}
	for in := head; in != nil; in = in.older {
		if isSpan(e.SpanID, in.spanID) || isSpan(e.ParentSpanID, in.spanID) ||
			slices.ContainsFunc(e.Ancestors, func(a string) bool { return isSpan(a, in.spanID) }) {
			return in
		}
	}
	if head.older == nil {
		return head
	}
	return nil
}

// Outgoing records the outcome of a call this service made, in the context
// ctx the call was made in: reported is the event id the callee acknowledged
// (see [Call.Reported]), "" when it acknowledged nothing. operation names
// what was called, so that a later call to the same operation supersedes
// this one. Calls in a context without a valid span are not recorded.
//
// The caller's errors that follow from an acknowledged call count as a
// cascade of it rather than as new failures. The rule, for one trace in the
// caller:
//
//   - A call is recorded with the context it was made in (its span and the
//     spans enclosing it) and its operation (for HTTP the method, host and
//     path; for gRPC the full method).
//   - An acknowledged call explains an error event of this service when the
//     error was captured, after the call returned, on the call's span or on
//     a span enclosing it: the handler that made the call, or a step of it
//     that the call was part of. An error captured on another branch, such
//     as a sibling goroutine's span, or on a span begun after the call, is
//     not explained by it. With sentryotel's span processor, neither is an
//     error on a span that started other work (another child span) after
//     the call's: it had carried on past the failure.
//   - A later call supersedes an earlier one, whatever its outcome, when it
//     calls the same operation anywhere in the trace (a retry that succeeded,
//     or failed without an acknowledgement, leaves the earlier failure
//     explaining nothing) or when it is made from the same span (the span
//     that made a failed call and went on calling has carried on: its error
//     no longer follows from that failure). A later acknowledged call
//     explains in its place.
//   - A call made while serving a request (its span encloses the call) is
//     forgotten when the request ends ([Incoming.End]): an error captured
//     after that, by a background goroutine of the handler, does not follow
//     from it.
//   - What is recorded lasts as long as WithMemory says, for at most
//     16 operations per trace; past that the oldest is forgotten and
//     its errors are sent.
//
// What it cannot tell apart: a caller that recovers from an acknowledged
// failure (it degrades gracefully, say with a cached answer) and then, with
// no further call, fails on its own in the same span looks like a cascade.
// Capture the own failure on a span of its own (any span begun after the
// call) and it is sent; or use [WithSendCascades], which sends every cascade
// tagged. The other way round, a caller that fails because of a call but
// makes another call first (a compensation) is sent: noise, not a loss.
//
// Adapters carry the event id on their transport's response (an HTTP header
// or a gRPC trailer) and feed it to [Transport.Incoming] and Outgoing.
// Outgoing keeps a copy of operation, never operation itself: an adapter may
// pass one built in a buffer it reuses.
func (t *Transport) Outgoing(ctx context.Context, operation, reported string) {
	span := trace.SpanFromContext(ctx)
	sc := span.SpanContext()
	if !sc.IsValid() {
		return
	}
	s := t.shardFor(sc.TraceID())
	op := maphash.String(t.seed, operation)
	caller := callerOf(span)
	superseded := func(c call) bool { return c.operation == op || c.caller == caller }
	if reported == "" {
		// The common case, on every successful call: nothing to record
		// unless it supersedes an acknowledged call.
		s.mu.Lock()
		if calls, ok := s.calls.getIfAny(sc.TraceID()); ok && slices.ContainsFunc(calls, superseded) {
			s.calls.put(sc.TraceID(), time.Now(), slices.DeleteFunc(slices.Clone(calls), superseded))
		}
		s.mu.Unlock()
		return
	}
	now := time.Now()
	c := call{operation: op, caller: caller, reported: strings.Clone(reported), spans: spanChain(span)}
	s.mu.Lock()
	defer s.mu.Unlock()
	calls, _ := s.calls.get(sc.TraceID(), now)
	calls = slices.DeleteFunc(slices.Clone(calls), superseded)
	if len(calls) >= maxCalls {
		calls = calls[1:]
	}
	s.calls.put(sc.TraceID(), now, append(calls, c))
}

// callerOf returns the span a call was made from: the client span's parent
// where span is the client span otelhttp or otelgrpc started, else span.
func callerOf(span trace.Span) trace.SpanID {
	if ro, ok := span.(interface {
		SpanKind() trace.SpanKind
		Parent() trace.SpanContext
	}); ok && ro.SpanKind() == trace.SpanKindClient && ro.Parent().IsValid() {
		return ro.Parent().SpanID()
	}
	return span.SpanContext().SpanID()
}

// spanChain returns span's id and the ids of the spans enclosing it, nearest
// first, as far as they are known.
func spanChain(span trace.Span) []trace.SpanID {
	chain := []trace.SpanID{span.SpanContext().SpanID()}
	if ro, ok := span.(interface{ Parent() trace.SpanContext }); ok {
		if p := ro.Parent(); p.IsValid() {
			chain = ancestry.Append(append(chain, p.SpanID()), p.SpanID())
		}
	}
	if len(chain) > maxCallSpans {
		chain = slices.Clip(chain[:maxCallSpans])
	}
	return chain
}

// explain returns the event id a downstream service acknowledged for a call
// of trace id that explains e, if one does: e was captured on the call's
// span or one enclosing it, after it (see [Transport.Outgoing]), and may
// follow from another service's failure (WithCascadeTypes). s.mu is held.
func (s *shard) explain(id trace.TraceID, e *rootcause.Error, now time.Time, rule rootcause.Rule) (string, bool) {
	calls, ok := s.calls.get(id, now)
	if !ok || !rule.Cascades(e) {
		return "", false
	}
	spanID, err := trace.SpanIDFromHex(e.SpanID)
	if err != nil {
		return "", false
	}
	for i := len(calls) - 1; i >= 0; i-- {
		k := slices.Index(calls[i].spans, spanID)
		if k < 0 {
			continue
		}
		if k > 0 && e.LastChild != "" && !isSpan(e.LastChild, calls[i].spans[k-1]) {
			// The span went on to start other work after the call (or had
			// ended): it carried on past the failure.
			continue
		}
		return calls[i].reported, true
	}
	return "", false
}

// isSpan reports whether id, as events carry span ids (16 lowercase hex
// digits), names span. It allocates nothing.
func isSpan(id string, span trace.SpanID) bool {
	var buf [16]byte
	hex.Encode(buf[:], span[:])
	return id == string(buf[:])
}
