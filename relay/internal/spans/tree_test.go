package spans

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracedup/tracedup/relay/internal/ingest"
)

var (
	tid = trace.TraceID{1}
	t0  = time.Unix(1_700_000_000, 0)
)

func id(b byte) trace.SpanID { return trace.SpanID{7: b} }

func span(s, parent byte, segment bool, start time.Duration) ingest.Span {
	return ingest.Span{TraceID: tid, SpanID: id(s), Parent: id(parent), Start: t0.Add(start), End: t0.Add(time.Second), Segment: segment}
}

// Ancestors cross services through the caller's client span; the last child
// is the one that started last before the capture.
func TestEnclosing(t *testing.T) {
	tree := New(1<<20, time.Hour, func(trace.TraceID) {})
	tree.Add([]ingest.Span{
		span(0xa1, 0, true, 0),             // gateway's entry
		span(0xe0, 0xa1, false, 0),         // its client span
		span(0xb1, 0xe0, true, 0),          // order's entry, called by it
		span(0xe1, 0xb1, false, 10),        // order's first call
		span(0xe2, 0xb1, false, 20),        // order's retry
		span(0xc1, 0xe2, true, 20),         // payment's entry
		span(0xc3, 0xc1, false, 25),        // payment's step, where it failed
		span(0xe3, 0xb1, false, time.Hour), // after the capture
	}, t0)

	links, ok := tree.Enclosing(tid, id(0xc3), t0.Add(30))
	require.True(t, ok)
	assert.Equal(t, []trace.SpanID{id(0xc1), id(0xe2), id(0xb1), id(0xe0), id(0xa1)}, links.Ancestors)

	links, ok = tree.Enclosing(tid, id(0xb1), t0.Add(30))
	require.True(t, ok)
	assert.True(t, links.LastChildKnown)
	assert.Equal(t, id(0xe2), links.LastChild, "the retry, not the span begun after the capture")

	links, _ = tree.Enclosing(tid, id(0xc3), t0.Add(30))
	assert.True(t, links.LastChildKnown)
	assert.False(t, links.LastChild.IsValid(), "no child had started")

	assert.False(t, links.Ended, "captured while its span ran")
	links, _ = tree.Enclosing(tid, id(0xb1), t0.Add(2*time.Second))
	assert.True(t, links.Ended, "captured on a span that had ended (at t0+1s): a background goroutine's")

	_, ok = tree.Enclosing(tid, id(0x99), t0)
	assert.False(t, ok, "a span not known")
	_, ok = tree.Enclosing(trace.TraceID{2}, id(0xc3), t0)
	assert.False(t, ok, "a trace not known")
}

// A trace is complete when every error's span is known and leads up to a
// service's entry span whose parent is not known; complete is called then,
// and again for an error that comes after.
func TestCompletion(t *testing.T) {
	var completed int
	tree := New(1<<20, time.Hour, func(trace.TraceID) { completed++ })
	tree.Expect(tid, id(0xc3), t0)
	tree.Add([]ingest.Span{span(0xc1, 0xe2, true, 0), span(0xc3, 0xc1, false, 0)}, t0)
	assert.Equal(t, 1, completed, "payment's spans lead to its entry, whose caller is not known")

	tree.Expect(tid, id(0xb1), t0)
	assert.Equal(t, 1, completed, "order's span is not known yet")
	tree.Add([]ingest.Span{span(0xb1, 0xe0, true, 0), span(0xe2, 0xb1, false, 0)}, t0)
	assert.Equal(t, 2, completed, "order's spans came, and link payment's under them")

	tree.Add([]ingest.Span{span(0xd1, 0xd0, false, 0)}, t0)
	tree.Expect(tid, id(0xd1), t0)
	assert.Equal(t, 2, completed, "a span that leads to no service's entry")
}

// The tree is bounded in bytes: past the bound the trace first seen longest
// ago is forgotten, as is a trace not seen for the ttl.
func TestTreeIsBounded(t *testing.T) {
	tree := New(50*nodeBytes, time.Minute, func(trace.TraceID) {})
	for i := range 100 {
		tree.Add([]ingest.Span{{TraceID: trace.TraceID{byte(i), 1}, SpanID: id(1), Segment: true}}, t0)
		assert.LessOrEqual(t, tree.Bytes(), int64(50*nodeBytes+128+nodeBytes))
	}
	_, ok := tree.Enclosing(trace.TraceID{0, 1}, id(1), t0)
	assert.False(t, ok, "the oldest was forgotten")
	_, ok = tree.Enclosing(trace.TraceID{99, 1}, id(1), t0)
	assert.True(t, ok)
	tree.Add(nil, t0.Add(2*time.Minute))
	tree.Expect(trace.TraceID{1, 2}, id(1), t0.Add(2*time.Minute))
	_, ok = tree.Enclosing(trace.TraceID{99, 1}, id(1), t0)
	assert.False(t, ok, "past the ttl")
}
