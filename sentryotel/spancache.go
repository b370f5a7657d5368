package sentryotel

import (
	"sync"

	"go.opentelemetry.io/otel/trace"
)

// spanCacheSize bounds the spans remembered between the resolver, which runs
// when sentry-go applies the scope, and the hook, which runs just after on
// the same goroutine. It only needs to outlast the captures in flight at once.
const spanCacheSize = 1024

// spanCache remembers the last spanCacheSize spans the resolver saw, oldest
// evicted first.
type spanCache struct {
	mu   sync.Mutex
	m    map[trace.SpanID]spanInfo
	ring []trace.SpanID
	next int
}

func newSpanCache() *spanCache {
	return &spanCache{m: make(map[trace.SpanID]spanInfo)}
}

func (c *spanCache) put(s spanInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[s.spanID]; ok {
		c.m[s.spanID] = s
		return
	}
	if len(c.ring) < spanCacheSize {
		c.ring = append(c.ring, s.spanID)
	} else {
		delete(c.m, c.ring[c.next])
		c.ring[c.next] = s.spanID
		c.next = (c.next + 1) % spanCacheSize
	}
	c.m[s.spanID] = s
}

func (c *spanCache) get(traceID trace.TraceID, spanID trace.SpanID) (spanInfo, bool) {
	c.mu.Lock()
	s, ok := c.m[spanID]
	c.mu.Unlock()
	if !ok || s.traceID != traceID {
		// Not resolved by us (sentry-go's own propagation context, say):
		// the ids are not known to be OTel's.
		return spanInfo{}, false
	}
	return s, true
}
