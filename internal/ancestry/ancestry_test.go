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
			End(id(n))
		}
	}()

	assert.Equal(t, []trace.SpanID{id(3), id(2), id(1)}, Append([]trace.SpanID{id(3)}, id(3)))
	assert.Equal(t, []trace.SpanID{id(1)}, Append([]trace.SpanID{id(1)}, id(1)), "the root has no parent")

	End(id(3))
	assert.Equal(t, []trace.SpanID{id(3)}, Append([]trace.SpanID{id(3)}, id(3)), "an ended span ends the chain")
}

func TestLastChild(t *testing.T) {
	Enable()
	Record(id(20), trace.SpanID{}) // a root span
	defer End(id(20))
	last, ok := LastChild(id(20))
	assert.True(t, ok)
	assert.False(t, last.IsValid(), "no child has started")

	Record(id(21), id(20))
	last, _ = LastChild(id(20))
	assert.Equal(t, id(21), last, "a live child counts: a call whose response is still open")
	Record(id(22), id(20))
	End(id(22))
	End(id(21))
	last, _ = LastChild(id(20))
	assert.Equal(t, id(22), last, "the child that started last, not the one that ended last")

	_, ok = LastChild(id(99))
	assert.False(t, ok, "not recorded")
}

func TestChainStopsAtALoopAndAtMaxDepth(t *testing.T) {
	Enable()
	Record(id(10), id(11))
	Record(id(11), id(10))
	defer End(id(10))
	defer End(id(11))
	assert.Equal(t, []trace.SpanID{id(10), id(11)}, Append([]trace.SpanID{id(10)}, id(10)))

	for n := uint64(100); n < 200; n++ {
		Record(id(n+1), id(n))
		defer End(id(n + 1))
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
	held := len(s.spans)
	s.mu.Unlock()
	assert.Equal(t, MaxSpans/numShards, held)
	for i := range n {
		End(id(uint64(i) * numShards))
	}
}

// BenchmarkRecordEnd is what sentryotel's SpanProcessor adds to every span:
// one Record as it starts and one End as it ends, under a live parent.
func BenchmarkRecordEnd(b *testing.B) {
	Enable()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var n uint64
		parent := id(0x5eed)
		Record(parent, trace.SpanID{})
		for pb.Next() {
			n++
			span := id(n * 0x9e3779b97f4a7c15)
			Record(span, parent)
			End(span)
		}
	})
}

// BenchmarkRecordEndSerial is BenchmarkRecordEnd on one goroutine: the cost
// a span adds to the request that starts it, without contention.
func BenchmarkRecordEndSerial(b *testing.B) {
	Enable()
	parent := id(0x5eee)
	Record(parent, trace.SpanID{})
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		span := id(uint64(i+1) * 0x9e3779b97f4a7c15)
		Record(span, parent)
		End(span)
	}
}
