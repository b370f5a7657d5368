package sentryotel

import (
	"sync"

	"go.opentelemetry.io/otel/trace"

	"github.com/tracedup/tracedup/internal/fifo"
)

// spanCacheSize bounds the spans remembered between the resolver, which runs
// when sentry-go applies the scope, and the hook, which runs just after on
// the same goroutine. It only needs to outlast the captures in flight at once.
const spanCacheSize = 1024

// spanCache remembers the last spanCacheSize spans the resolver saw, oldest
// evicted first.
type spanCache struct {
	mu sync.Mutex
	m  *fifo.Map[trace.SpanID, spanInfo]
}

func newSpanCache() *spanCache {
	return &spanCache{m: fifo.New[trace.SpanID, spanInfo](spanCacheSize)}
}

func (c *spanCache) put(s spanInfo) {
	c.mu.Lock()
	c.m.Put(s.spanID, s)
	c.mu.Unlock()
}

func (c *spanCache) get(traceID trace.TraceID, spanID trace.SpanID) (spanInfo, bool) {
	c.mu.Lock()
	s, ok := c.m.Get(spanID)
	c.mu.Unlock()
	if !ok || s.traceID != traceID {
		// Not resolved by us (sentry-go's own propagation context, say):
		// the ids are not known to be OTel's.
		return spanInfo{}, false
	}
	return s, true
}
