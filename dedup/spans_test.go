package dedup_test

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/internal/sentrytest"
)

// spanTree is a SpanSource of parents, as a relay learns them from the
// transactions that pass through it.
type spanTree struct {
	mu      sync.Mutex
	parents map[trace.SpanID]trace.SpanID
	// last and ended are what a span's errors were captured after: its
	// child that started last, or its own end.
	last  map[trace.SpanID]trace.SpanID
	ended map[trace.SpanID]bool
}

func (s *spanTree) add(t *testing.T, span, parent string) {
	t.Helper()
	sid, err := trace.SpanIDFromHex(span)
	require.NoError(t, err)
	pid, err := trace.SpanIDFromHex(parent)
	require.NoError(t, err)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.parents == nil {
		s.parents = map[trace.SpanID]trace.SpanID{}
	}
	s.parents[sid] = pid
}

func (s *spanTree) Enclosing(_ trace.TraceID, span trace.SpanID, _ time.Time) (dedup.SpanLinks, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var chain []trace.SpanID
	for p, ok := s.parents[span]; ok && len(chain) < 32; p, ok = s.parents[p] {
		chain = append(chain, p)
	}
	last, known := s.last[span]
	return dedup.SpanLinks{Ancestors: chain, LastChild: last, LastChildKnown: known, Ended: s.ended[span]}, len(chain) > 0
}

// Events of three services carry only their own span and its parent: the
// caller's client span links payment's server span to order's handler only
// in the span tree. With the tree as the Transport's SpanSource, the
// cascade is one report; TraceComplete decides it a grace later.
func TestSpanSourceLinksServices(t *testing.T) {
	for _, withSource := range []bool{true, false} {
		t.Run(map[bool]string{true: "with source", false: "without"}[withSource], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tree := &spanTree{}
				var options []dedup.Option
				if withSource {
					options = append(options, dedup.WithSpanSource(tree))
				}
				inner := sentrytest.NewTransport()
				tr := dedup.NewTransport(inner, options...)
				defer tr.Close()
				// payment's error on c3 (server span s1, called by order's
				// client span x1, on order's handler b2, under the
				// gateway's client span x0 on a1).
				tr.SendEvent(errEvent(traceA, "00000000000000c3", "00000000000000f1", "payment", "*main.PaymentDeclined"))
				tr.SendEvent(errEvent(traceA, "00000000000000b2", "00000000000000f0", "order", "*main.CallFailed"))
				tr.SendEvent(errEvent(traceA, "00000000000000a1", "", "gateway", "*main.CallFailed"))
				tree.add(t, "00000000000000c3", "00000000000000f1")
				tree.add(t, "00000000000000f1", "00000000000000e1") // payment's server span, order's client span
				tree.add(t, "00000000000000e1", "00000000000000b2")
				tree.add(t, "00000000000000b2", "00000000000000f0")
				tree.add(t, "00000000000000f0", "00000000000000e0")
				tree.add(t, "00000000000000e0", "00000000000000a1")

				tid, err := trace.TraceIDFromHex(traceA)
				require.NoError(t, err)
				tr.TraceComplete(tid)
				time.Sleep(dedup.DefaultRequestGrace)
				synctest.Wait()
				st := tr.Stats()
				assert.Equal(t, uint64(1), st.RequestEnded, "decided a grace after the trace completed: %+v", st)
				if !withSource {
					assert.Len(t, inner.Events(), 3, "no known link: each sent")
					return
				}
				require.Len(t, inner.Events(), 1)
				assert.Equal(t, "*main.PaymentDeclined", inner.Events()[0].Exception[0].Type)
				assert.Equal(t, "2", inner.Events()[0].Tags[dedup.TagSuppressed])
			})
		})
	}
}

// Errors of one service that carry their span and parent alone: the handler
// b2's own error, captured after its first step c1 failed, follows from
// c1's error unless the source knows better at the decision: that b2 had
// started another step since (a retry that succeeded), or had ended (a
// background goroutine's error). The handler's error is then a root of its
// own, and its body must still be there to be sent. Before, it was let go
// on arrival as a symptom, and only c1's error was sent.
func TestSpanSourceKnowsTheSpanCarriedOn(t *testing.T) {
	for _, tt := range []struct {
		name string
		know func(s *spanTree, b2, c2 trace.SpanID)
		want int
	}{
		{"nothing more", func(*spanTree, trace.SpanID, trace.SpanID) {}, 1},
		{"a later child", func(s *spanTree, b2, c2 trace.SpanID) { s.last = map[trace.SpanID]trace.SpanID{b2: c2} }, 2},
		{"the span ended", func(s *spanTree, b2, _ trace.SpanID) { s.ended = map[trace.SpanID]bool{b2: true} }, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tree := &spanTree{}
				inner := sentrytest.NewTransport()
				tr := dedup.NewTransport(inner, dedup.WithSpanSource(tree))
				defer tr.Close()
				tr.SendEvent(errEvent(traceA, "00000000000000c1", "00000000000000b2", "order", "*main.StockError"))
				tr.SendEvent(errEvent(traceA, "00000000000000b2", "00000000000000f0", "order", "*main.PriceError"))
				tree.add(t, "00000000000000c1", "00000000000000b2")
				tree.add(t, "00000000000000c2", "00000000000000b2")
				tree.add(t, "00000000000000b2", "00000000000000f0")
				b2, _ := trace.SpanIDFromHex("00000000000000b2")
				c2, _ := trace.SpanIDFromHex("00000000000000c2")
				tree.mu.Lock()
				tt.know(tree, b2, c2)
				tree.mu.Unlock()
				require.True(t, tr.Flush(time.Second))
				st := tr.Stats()
				assert.Len(t, inner.Events(), tt.want, "%+v", st)
				assert.Equal(t, st.Received, st.Emitted+st.Suppressed+st.Pending, "%+v", st)
			})
		})
	}
}
