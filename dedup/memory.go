package dedup

import (
	"time"

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
	max  int
	ttl  time.Duration
	m    map[string]remembered[V]
	ring []string // trace ids in the order they were put
	next int
}

type remembered[V any] struct {
	at time.Time
	v  V
}

func newMemory[V any](max int, ttl time.Duration) *memory[V] {
	return &memory[V]{max: max, ttl: ttl, m: make(map[string]remembered[V])}
}

// put remembers v for traceID from now. A trace put again keeps its place in
// the eviction order: it is evicted by when it was first put.
func (m *memory[V]) put(traceID string, now time.Time, v V) {
	if _, ok := m.m[traceID]; ok {
		m.m[traceID] = remembered[V]{now, v}
		return
	}
	if len(m.ring) < m.max {
		m.ring = append(m.ring, traceID)
	} else {
		delete(m.m, m.ring[m.next])
		m.ring[m.next] = traceID
		m.next = (m.next + 1) % m.max
	}
	m.m[traceID] = remembered[V]{now, v}
}

func (m *memory[V]) get(traceID string, now time.Time) (V, bool) {
	r, ok := m.m[traceID]
	if !ok || now.Sub(r.at) > m.ttl {
		var zero V
		return zero, false
	}
	return r.v, true
}
