// Package spans keeps the span trees of the traces whose errors the relay
// holds, learned from the transactions, span items and OTLP traces that pass
// through it, so that the deduplicator can link errors across services.
package spans

import (
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/relay/internal/ingest"
)

// MaxDepth bounds a chain of ancestors, as the in-process span processor's.
const MaxDepth = 32

// nodeBytes is what one span costs the tree: its node, its map entry and its
// place in its parent's children.
const nodeBytes = 160

// Tree holds the spans of recent traces, bounded in bytes: past the bound the
// trace first seen longest ago is forgotten, as is a trace not seen for the
// ttl. It is safe for concurrent use, and it is a dedup.SpanSource.
type Tree struct {
	maxBytes int64
	ttl      time.Duration
	// complete is called, outside the lock, when every error span expected
	// of a trace is known and each leads up to a service's entry span.
	complete func(trace.TraceID)

	mu     sync.Mutex
	traces map[trace.TraceID]*tree
	order  []trace.TraceID // by when first seen, oldest first from head
	head   int
	bytes  int64
}

var _ dedup.SpanSource = (*Tree)(nil)

// tree is one trace's spans.
type tree struct {
	nodes    map[trace.SpanID]*node
	expected map[trace.SpanID]bool // spans errors were captured on
	seen     time.Time
	// doneFor is how many expected spans the trace had when complete was
	// last called: an error that comes after it opens a window of its own,
	// which must be told too.
	doneFor int
}

type node struct {
	parent     trace.SpanID
	start, end time.Time
	segment    bool
	children   []trace.SpanID
	known      bool // the span itself arrived (not only named as a parent)
}

// New returns a Tree of at most maxBytes, forgetting a trace ttl after it was
// last seen, that calls complete when a trace's error spans are all known
// (see Expect).
func New(maxBytes int64, ttl time.Duration, complete func(trace.TraceID)) *Tree {
	return &Tree{maxBytes: maxBytes, ttl: ttl, complete: complete, traces: make(map[trace.TraceID]*tree)}
}

// Add learns spans.
func (t *Tree) Add(spans []ingest.Span, now time.Time) {
	var completed []trace.TraceID
	t.mu.Lock()
	for i := range spans {
		sp := &spans[i]
		if !sp.TraceID.IsValid() || !sp.SpanID.IsValid() {
			continue
		}
		tr := t.traceOf(sp.TraceID, now)
		n := tr.nodes[sp.SpanID]
		if n == nil {
			n = &node{}
			tr.nodes[sp.SpanID] = n
			t.bytes += nodeBytes
		}
		if n.known {
			continue // a span sent twice (a retry): the first holds
		}
		n.known, n.parent, n.start, n.end, n.segment = true, sp.Parent, sp.Start, sp.End, sp.Segment
		if sp.Parent.IsValid() {
			p := tr.nodes[sp.Parent]
			if p == nil {
				p = &node{}
				tr.nodes[sp.Parent] = p
				t.bytes += nodeBytes
			}
			p.children = append(p.children, sp.SpanID)
		}
	}
	for i := range spans {
		if tr := t.traces[spans[i].TraceID]; tr != nil && t.newlyComplete(tr) {
			completed = append(completed, spans[i].TraceID)
		}
	}
	t.evict(now)
	t.mu.Unlock()
	for _, id := range completed {
		t.complete(id)
	}
}

// Expect notes that an error was captured on span of trace id: the trace is
// complete once that span, and those of its other errors, are known. Call
// it once the error's window exists: when the trace is complete already,
// complete is called at once.
func (t *Tree) Expect(id trace.TraceID, span trace.SpanID, now time.Time) {
	if !id.IsValid() || !span.IsValid() {
		return
	}
	t.mu.Lock()
	tr := t.traceOf(id, now)
	if tr.expected == nil {
		tr.expected = make(map[trace.SpanID]bool, 2)
	}
	if !tr.expected[span] {
		tr.expected[span] = true
		t.bytes += 32
	}
	done := t.newlyComplete(tr)
	t.evict(now)
	t.mu.Unlock()
	if done {
		t.complete(id)
	}
}

// newlyComplete reports whether tr is complete with errors it was not
// complete with before, and notes them. t.mu is held.
func (t *Tree) newlyComplete(tr *tree) bool {
	if len(tr.expected) <= tr.doneFor || !t.isComplete(tr) {
		return false
	}
	tr.doneFor = len(tr.expected)
	return true
}

// isComplete reports whether every expected span of tr is known and leads up
// to a service's entry span whose own parent is not known: the requests that
// enclose the errors have ended and sent their spans. t.mu is held.
func (t *Tree) isComplete(tr *tree) bool {
	if len(tr.expected) == 0 {
		return false
	}
	for span := range tr.expected {
		n := tr.nodes[span]
		if n == nil || !n.known {
			return false
		}
		for depth := 0; ; depth++ {
			p := tr.nodes[n.parent]
			if !n.parent.IsValid() || p == nil || !p.known || depth == MaxDepth {
				if !n.segment {
					return false
				}
				break
			}
			n = p
		}
	}
	return true
}

// traceOf returns id's tree, making it. t.mu is held.
func (t *Tree) traceOf(id trace.TraceID, now time.Time) *tree {
	tr := t.traces[id]
	if tr == nil {
		tr = &tree{nodes: make(map[trace.SpanID]*node)}
		t.traces[id] = tr
		t.order = append(t.order, id)
		t.bytes += 128
	}
	tr.seen = now
	return tr
}

// evict forgets the oldest traces while the tree is over its bytes, and
// those not seen for the ttl. t.mu is held.
func (t *Tree) evict(now time.Time) {
	for t.head < len(t.order) {
		id := t.order[t.head]
		tr := t.traces[id]
		if tr != nil && t.bytes <= t.maxBytes && now.Sub(tr.seen) <= t.ttl {
			break
		}
		t.head++
		if tr != nil {
			t.bytes -= 128 + int64(len(tr.nodes))*nodeBytes + int64(len(tr.expected))*32
			delete(t.traces, id)
		}
	}
	if t.head > 64 && t.head > len(t.order)/2 {
		t.order = append([]trace.TraceID(nil), t.order[t.head:]...)
		t.head = 0
	}
}

// Enclosing implements dedup.SpanSource: the span's ancestors across
// services, and its child that started last before at.
func (t *Tree) Enclosing(id trace.TraceID, span trace.SpanID, at time.Time) (dedup.SpanLinks, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tr := t.traces[id]
	if tr == nil {
		return dedup.SpanLinks{}, false
	}
	n := tr.nodes[span]
	if n == nil || !n.known {
		return dedup.SpanLinks{}, false
	}
	var links dedup.SpanLinks
	for p := n.parent; p.IsValid() && len(links.Ancestors) < MaxDepth; {
		links.Ancestors = append(links.Ancestors, p)
		pn := tr.nodes[p]
		if pn == nil || !pn.known {
			break
		}
		p = pn.parent
	}
	// The children started before the capture, by their own service's
	// clock: a span's children are in its service, as the capture is.
	links.LastChildKnown = true
	// Ended by the same clock as the capture: its service's.
	links.Ended = !n.end.IsZero() && !n.end.After(at)
	var latest time.Time
	for _, c := range n.children {
		cn := tr.nodes[c]
		if cn == nil || !cn.known || cn.start.After(at) {
			continue
		}
		if !links.LastChild.IsValid() || cn.start.After(latest) {
			links.LastChild, latest = c, cn.start
		}
	}
	return links, true
}

// Bytes returns the estimated bytes the tree holds.
func (t *Tree) Bytes() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.bytes
}
