package dedup

import (
	"slices"
	"time"

	"github.com/tracedup/tracedup/internal/fifo"
	"github.com/tracedup/tracedup/rootcause"
)

// decision is what is remembered of a decided trace, to judge its late
// events: its errors, without the events themselves, and which were sent.
type decision struct {
	errs   []rootcause.Error
	sent   []bool // sent[i] says whether errs[i] was sent
	failed bool   // the strategy failed and every event was sent
}

// maxRemembered bounds the errors remembered for one trace. The sent ones
// are remembered first: they are what suppresses a late event.
const maxRemembered = 16

// remember returns d with e added. When d is full, a sent e takes the place
// of the newest error d remembers that was not sent, and an e not sent is
// left out: forgetting a suppressed error can only leave a later event
// unexplained, and so sent. It never changes the arrays d shares with
// readers that copied it.
func (d decision) remember(e rootcause.Error, sent bool) decision {
	e.Event = nil // the memory must not keep the event alive
	if len(d.errs) < maxRemembered {
		d.errs = append(slices.Clip(d.errs), e)
		d.sent = append(slices.Clip(d.sent), sent)
		return d
	}
	if !sent {
		return d
	}
	for i := len(d.sent) - 1; i >= 0; i-- {
		if !d.sent[i] {
			d.errs, d.sent = slices.Clone(d.errs), slices.Clone(d.sent)
			d.errs[i], d.sent[i] = e, true
			break
		}
	}
	return d
}

// memory remembers a value for each of at most max keys for ttl, evicting
// the oldest first. It is guarded by its owner's lock.
type memory[K comparable, V any] struct {
	ttl time.Duration
	m   *fifo.Map[K, remembered[V]]
}

type remembered[V any] struct {
	at time.Time
	v  V
}

func newMemory[K comparable, V any](max int, ttl time.Duration) *memory[K, V] {
	return &memory[K, V]{ttl: ttl, m: fifo.New[K, remembered[V]](max)}
}

// put remembers v for key from now. A key put again keeps its place in the
// eviction order: it is evicted by when it was first put.
func (m *memory[K, V]) put(key K, now time.Time, v V) {
	m.m.Put(key, remembered[V]{now, v})
}

func (m *memory[K, V]) get(key K, now time.Time) (V, bool) {
	r, ok := m.m.Get(key)
	if !ok || now.Sub(r.at) > m.ttl {
		var zero V
		return zero, false
	}
	return r.v, true
}

// getIfAny is get at the present time, without reading the clock when
// nothing at all is remembered.
func (m *memory[K, V]) getIfAny(key K) (V, bool) {
	if m.m.Len() == 0 {
		var zero V
		return zero, false
	}
	return m.get(key, time.Now())
}
