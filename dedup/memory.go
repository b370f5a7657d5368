package dedup

import (
	"time"

	"github.com/tracedup/tracedup/rootcause"
)

// decision is what is remembered of a decided trace.
type decision struct {
	at     time.Time
	root   rootcause.Error // the event sent, without the event itself
	failed bool            // the strategy failed and every event was sent
}

// memory remembers the decisions of at most max traces for ttl, evicting the
// oldest first. It is guarded by its shard's lock.
type memory struct {
	max  int
	ttl  time.Duration
	m    map[string]decision
	ring []string // trace ids in the order they were decided
	next int
}

func newMemory(max int, ttl time.Duration) *memory {
	return &memory{max: max, ttl: ttl, m: make(map[string]decision)}
}

func (m *memory) put(traceID string, d decision) {
	if _, ok := m.m[traceID]; ok {
		m.m[traceID] = d
		return
	}
	if len(m.ring) < m.max {
		m.ring = append(m.ring, traceID)
	} else {
		delete(m.m, m.ring[m.next])
		m.ring[m.next] = traceID
		m.next = (m.next + 1) % m.max
	}
	m.m[traceID] = d
}

func (m *memory) get(traceID string, now time.Time) (decision, bool) {
	d, ok := m.m[traceID]
	if !ok || now.Sub(d.at) > m.ttl {
		return decision{}, false
	}
	return d, true
}
