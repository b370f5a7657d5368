package ancestry

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.opentelemetry.io/otel/trace"
)

func id(n uint64) trace.SpanID {
	var s trace.SpanID
	binary.BigEndian.PutUint64(s[:], n)
	return s
}

func TestChain(t *testing.T) {
	Enable()
	// root(1) <- handler(2) <- step(3) <- query(4)
	Record(id(2), id(1))
	Record(id(3), id(2))
	Record(id(4), id(3))
	defer func() {
		for n := uint64(2); n <= 4; n++ {
			Forget(id(n))
		}
	}()

	assert.Equal(t, []trace.SpanID{id(3), id(2), id(1)}, Append([]trace.SpanID{id(3)}, id(3)))
	assert.Equal(t, []trace.SpanID{id(1)}, Append([]trace.SpanID{id(1)}, id(1)), "the root has no parent")

	Forget(id(3))
	assert.Equal(t, []trace.SpanID{id(3)}, Append([]trace.SpanID{id(3)}, id(3)), "an ended span ends the chain")
}

func TestChainStopsAtALoopAndAtMaxDepth(t *testing.T) {
	Enable()
	Record(id(10), id(11))
	Record(id(11), id(10))
	defer Forget(id(10))
	defer Forget(id(11))
	assert.Equal(t, []trace.SpanID{id(10), id(11)}, Append([]trace.SpanID{id(10)}, id(10)))

	for n := uint64(100); n < 200; n++ {
		Record(id(n+1), id(n))
		defer Forget(id(n + 1))
	}
	assert.Len(t, Append([]trace.SpanID{id(200)}, id(200)), MaxDepth)
}

func TestTableIsBounded(t *testing.T) {
	Enable()
	s := shardOf(id(0))
	n := MaxSpans/numShards + 10
	for i := range n {
		Record(id(uint64(i)*numShards), id(1)) // all in shard 0
	}
	s.mu.Lock()
	held := len(s.parents)
	s.mu.Unlock()
	assert.Equal(t, MaxSpans/numShards, held)
	for i := range n {
		Forget(id(uint64(i) * numShards))
	}
}

// BenchmarkRecordForget is what sentryotel's SpanProcessor adds to every
// span: one Record as it starts and one Forget as it ends.
func BenchmarkRecordForget(b *testing.B) {
	Enable()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var n uint64
		for pb.Next() {
			n++
			span := id(n * 0x9e3779b97f4a7c15)
			Record(span, id(n))
			Forget(span)
		}
	})
}
