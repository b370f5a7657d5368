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
	return dedup.SpanLinks{Ancestors: chain}, len(chain) > 0
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
