package dedup

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/tracedup/tracedup/internal/ancestry"
	"github.com/tracedup/tracedup/rootcause"
)

// maxCalls bounds the operations whose last call is recorded per trace.
const maxCalls = 16

// acks is the acknowledgement's state: the calls this service is serving
// and the outcome of the calls it made. It has locks of its own, apart from
// the deduplicator's windows: the two are consulted one after the other and
// need no atomicity between them.
type acks struct {
	shards [numShards]ackShard
}

type ackShard struct {
	mu sync.Mutex
	// live are the calls being served, in no order (each knows its index):
	// a slice, not a map by trace, since every request adds and removes
	// one and a shard holds few at a time; the rarer questions (is a call
	// its trace's last, which call an error event belongs to) scan it.
	live []*Incoming
	seq  uint64 // counts the calls begun, to tell the newest apart
	// calls are the last calls made, per trace and operation.
	calls *memory[trace.TraceID, []call]
	_     [64]byte
}

// call is one outgoing call whose last outcome is recorded.
type call struct {
	operation string
	caller    trace.SpanID // the span the call was made from
	reported  string       // the event id the callee acknowledged, "" if none
	// spans are the call's span and the spans enclosing it, nearest first.
	spans []trace.SpanID
}

func newAcks(maxTraces int, ttl time.Duration) *acks {
	a := &acks{}
	perShard := max(1, maxTraces/numShards)
	for i := range a.shards {
		a.shards[i].calls = newMemory[trace.TraceID, []call](perShard, ttl)
	}
	return a
}

func (a *acks) shard(id trace.TraceID) *ackShard { return &a.shards[id[15]%numShards] }

// Incoming is a call this service is serving, as the acknowledgement sees it:
// adapters ask it, when they write the response, whether an error event of
// the call reached the Transport. Its methods are safe for concurrent use and
// on a nil *Incoming, which is what calls without a trace get. The zero
// Incoming tracks nothing, like a nil one, until [Incoming.Begin].
type Incoming struct {
	traceID  trace.TraceID
	spanID   trace.SpanID
	reported atomic.Pointer[string]
	seq      uint64     // when it began among the shard's calls, guarded by the shard
	index    int        // its index in the shard's live calls, -1 once ended; guarded by the shard
	shard    *ackShard  // nil while it tracks nothing
	t        *Transport // told when the trace's last live call ends
}

// Incoming starts tracking a call this service serves, whose span is in ctx
// (the server span otelhttp or otelgrpc started). Call End when the call is
// done. It returns nil when ctx has no valid span.
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
// and reports whether it does: when ctx has no valid span, in tracks nothing
// (its methods do what they do on a nil *Incoming).
//
// in must be a zero Incoming or one whose End has returned. After End the
// Transport holds no reference to in, so the owner may Begin it again for
// another call; it must not use it for the ended call any more (a
// Reported or End for that call would see the new one). Unlike its other
// methods, Begin must not run concurrently with another method of in.
func (in *Incoming) Begin(ctx context.Context, t *Transport) bool {
	in.reported.Store(nil)
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		in.shard, in.t = nil, nil
		return false
	}
	in.traceID, in.spanID, in.t = sc.TraceID(), sc.SpanID(), t
	in.shard = t.acks.shard(in.traceID)
	in.shard.mu.Lock()
	in.shard.seq++
	in.seq, in.index = in.shard.seq, len(in.shard.live)
	in.shard.live = append(in.shard.live, in)
	in.shard.mu.Unlock()
	return true
}

// Reported returns the event id to acknowledge the call with, or "" when no
// error event of the call reached the Transport (yet). It is the id of the
// event captured or, when that event was a cascade, of the event it stands
// behind.
func (in *Incoming) Reported() string {
	if in == nil {
		return ""
	}
	if id := in.reported.Load(); id != nil {
		return *id
	}
	return ""
}

// End stops tracking the call and forgets the calls made while serving it:
// an error captured after its request is over (by a background goroutine of
// the handler, say) does not follow from them. When no other call of its
// trace is being served in this process, the in-process cascade of the trace
// is complete: the Transport then decides the trace a grace later
// (WithRequestGrace) rather than when its window ends. It is safe to call
// more than once.
func (in *Incoming) End() {
	if in == nil || in.shard == nil {
		return
	}
	if in.unlink() && in.t != nil && in.t.windows.Load() > 0 {
		id := traceHex(in.traceID)
		in.t.requestEnded(id[:])
	}
}

// traceHex returns id in lowercase hex, as the events carry it. End runs
// it on every request: it turns four bytes at a time into their eight
// digits with word arithmetic, at a fifth of hex.Encode's cost.
func traceHex(id trace.TraceID) (h [32]byte) {
	for i := 0; i < len(id); i += 4 {
		binary.BigEndian.PutUint64(h[2*i:], hexWord(binary.BigEndian.Uint32(id[i:])))
	}
	return h
}

// hexWord returns the eight hex digits of v, the first in the top byte.
func hexWord(v uint32) uint64 {
	// One nibble a byte, in order: 0x12345678 -> 0x0102030405060708.
	x := uint64(v)
	x = (x | x<<16) & 0x0000ffff0000ffff
	x = (x | x<<8) & 0x00ff00ff00ff00ff
	x = (x | x<<4) & 0x0f0f0f0f0f0f0f0f
	// Each nibble n to '0'+n, plus 'a'-'0'-10 where n > 9 (n+6 carries
	// into the byte's fifth bit).
	letters := (x + 0x0606060606060606) >> 4 & 0x0101010101010101
	return x + 0x3030303030303030 + letters*('a'-'0'-10)
}

// unlink removes in from the live calls, forgets the calls made while
// serving it, and reports whether it was the last live call of its trace.
func (in *Incoming) unlink() (last bool) {
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
	if in.index < 0 {
		return false // ended before
	}
	end := len(s.live) - 1
	moved := s.live[end]
	s.live[in.index], moved.index = moved, in.index
	s.live[end] = nil
	s.live = s.live[:end]
	in.index = -1
	for _, l := range s.live {
		if l.traceID == in.traceID {
			return false
		}
	}
	return true
}

// Outgoing records the outcome of a call this service made, in the context
// ctx the call was made in: reported is the event id the callee acknowledged
// (see [ParseReported]), "" when it acknowledged nothing. operation names
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
	s := t.acks.shard(sc.TraceID())
	caller := callerOf(span)
	superseded := func(c call) bool { return c.operation == operation || c.caller == caller }
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
	// A copy, so that operation does not escape: the success path above,
	// every call's, then costs the adapter no allocation.
	c := call{operation: strings.Clone(operation), caller: caller, reported: reported, spans: spanChain(span)}
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
	return chain
}

// settle returns the event id a downstream service acknowledged for a call
// that explains e, if one does and e is of one of cascadeTypes (any type
// when there are none), and records on the call being served that e was
// captured in the id to acknowledge it with: a cascade passes on the
// downstream event's id; any other error its own, unless own is false (the
// event reaches nobody, after Close). It parses e's trace id and takes the
// shard's lock once for both.
func (a *acks) settle(e *rootcause.Error, now time.Time, cascadeTypes []string, own bool) (string, bool) {
	traceID, err := trace.TraceIDFromHex(e.TraceID)
	if err != nil {
		return "", false
	}
	s := a.shard(traceID)
	s.mu.Lock()
	defer s.mu.Unlock()
	downstream, cascade := s.explain(traceID, e, now)
	if cascade && len(cascadeTypes) > 0 && !e.IsType(cascadeTypes...) {
		downstream, cascade = "", false // not a type the code wraps a failed call in
	}
	switch {
	case cascade:
		s.acknowledge(traceID, e, downstream)
	case own:
		s.acknowledge(traceID, e, e.EventID)
	}
	return downstream, cascade
}

// explain returns the event id a downstream service acknowledged for a call
// that explains e, if one does. s.mu is held.
func (s *ackShard) explain(traceID trace.TraceID, e *rootcause.Error, now time.Time) (string, bool) {
	spanID, err := trace.SpanIDFromHex(e.SpanID)
	if err != nil {
		return "", false
	}
	calls, _ := s.calls.get(traceID, now)
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

// acknowledge records id on the call being served that e was captured in:
// the one whose span is e's span or encloses it, else the only one of the
// trace in flight. s.mu is held.
func (s *ackShard) acknowledge(traceID trace.TraceID, e *rootcause.Error, id string) {
	// The newest matching call: a call nested in another of the trace
	// (served by this process for itself) is more precise than the outer.
	var match, only *Incoming
	n := 0
	for _, in := range s.live {
		if in.traceID != traceID {
			continue
		}
		n, only = n+1, in
		if match != nil && in.seq < match.seq {
			continue
		}
		if isSpan(e.SpanID, in.spanID) || isSpan(e.ParentSpanID, in.spanID) ||
			slices.ContainsFunc(e.Ancestors, func(a string) bool { return isSpan(a, in.spanID) }) {
			match = in
		}
	}
	if match == nil && n == 1 {
		match = only
	}
	if match != nil {
		match.reported.CompareAndSwap(nil, &id)
	}
}
