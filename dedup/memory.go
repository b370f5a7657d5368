package dedup

import (
	"time"

	"github.com/tracedup/tracedup/internal/fifo"
	"github.com/tracedup/tracedup/rootcause"
)

// decision is what is remembered of a decided trace.
type decision struct {
	root   rootcause.Error // the event sent, without the event itself
	failed bool            // the strategy failed and every event was sent
}

// memory remembers a value for each of at most max traces for ttl, evicting
// the oldest first. It is guarded by its shard's lock.
type memory[V any] struct {
	ttl time.Duration
	m   *fifo.Map[string, remembered[V]]
}

type remembered[V any] struct {
	at time.Time
	v  V
}

func newMemory[V any](max int, ttl time.Duration) *memory[V] {
	return &memory[V]{ttl: ttl, m: fifo.New[string, remembered[V]](max)}
}

// put remembers v for traceID from now. A trace put again keeps its place in
// the eviction order: it is evicted by when it was first put.
func (m *memory[V]) put(traceID string, now time.Time, v V) {
	m.m.Put(traceID, remembered[V]{now, v})
}

func (m *memory[V]) get(traceID string, now time.Time) (V, bool) {
	r, ok := m.m.Get(traceID)
	if !ok || now.Sub(r.at) > m.ttl {
		var zero V
		return zero, false
	}
	return r.v, true
}
