// Package ancestry keeps the parent of every live span of the process, so
// that the span an error was captured on can be traced to its local root.
//
// A span knows only its parent's id; its grandparent is known to nobody once
// the span was started. sentryotel's span processor records each span's parent
// here while the span is live, and the hook and the deduplicator's adapters
// read chains back. The table is process-wide because span ids are: every
// tracer provider of the process can feed it, and every reader finds every
// span, however many providers and Sentry clients the process has.
package ancestry

import (
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/trace"
)

// MaxDepth bounds a chain: deeper ancestors are not followed, which also
// ends a walk through bad data that loops.
const MaxDepth = 32

// MaxSpans bounds the spans recorded at once across the process. Past it a
// new span is not recorded, and chains through it stop there: spans that are
// never ended cannot grow the table without bound.
const MaxSpans = 1 << 18

const numShards = 64

// table is the process-wide record. Its shards are picked by the span id's
// last byte, which is random for the SDK's generator.
var table struct {
	enabled atomic.Bool
	shards  [numShards]shard
}

type shard struct {
	mu    sync.Mutex
	spans map[trace.SpanID]entry
	_     [40]byte // keep shards' locks on separate cache lines
}

// entry is what the table knows of a live span.
type entry struct {
	parent trace.SpanID // zero for a root span
	// lastChild is the child that started last, zero while none has.
	lastChild trace.SpanID
}

// Enable turns recording on. Until it is called, Record does nothing and
// chains hold only what a span knows of itself.
func Enable() { table.enabled.Store(true) }

// Enabled reports whether a span processor feeds the table.
func Enabled() bool { return table.enabled.Load() }

func shardOf(id trace.SpanID) *shard { return &table.shards[id[7]%numShards] }

// Record notes that span started with parent (zero for a root span), until
// End(span), and notes on its parent, where the parent is recorded, that span
// is the child that started last.
func Record(span, parent trace.SpanID) {
	s := shardOf(span)
	s.mu.Lock()
	if s.spans == nil {
		s.spans = make(map[trace.SpanID]entry)
	}
	if len(s.spans) < MaxSpans/numShards {
		s.spans[span] = entry{parent: parent}
	}
	s.mu.Unlock()
	if !parent.IsValid() {
		return
	}
	p := shardOf(parent)
	p.mu.Lock()
	if e, ok := p.spans[parent]; ok {
		e.lastChild = span
		p.spans[parent] = e
	}
	p.mu.Unlock()
}

// End drops what Record noted of span.
func End(span trace.SpanID) {
	s := shardOf(span)
	s.mu.Lock()
	delete(s.spans, span)
	s.mu.Unlock()
}

// LastChild returns the child of span that started last (zero while none
// has), and whether span is recorded at all.
func LastChild(span trace.SpanID) (trace.SpanID, bool) {
	if !Enabled() {
		return trace.SpanID{}, false
	}
	s := shardOf(span)
	s.mu.Lock()
	e, ok := s.spans[span]
	s.mu.Unlock()
	return e.lastChild, ok
}

// parentOf returns the recorded parent of span.
func parentOf(span trace.SpanID) (trace.SpanID, bool) {
	s := shardOf(span)
	s.mu.Lock()
	e, ok := s.spans[span]
	s.mu.Unlock()
	return e.parent, ok
}

// Append appends to chain the ancestors of parent, nearest first, that the
// table knows: parent's parent, its parent, and so on, at most MaxDepth ids
// in all in chain. It stops at a span it already holds.
func Append(chain []trace.SpanID, parent trace.SpanID) []trace.SpanID {
	if !Enabled() {
		return chain
	}
	for len(chain) < MaxDepth {
		p, ok := parentOf(parent)
		if !ok || !p.IsValid() {
			return chain
		}
		for _, seen := range chain {
			if seen == p {
				return chain
			}
		}
		chain = append(chain, p)
		parent = p
	}
	return chain
}
