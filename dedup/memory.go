package dedup

import (
	"slices"
	"time"
	"unsafe"

	"github.com/tracedup/tracedup/rootcause"
)

// decision is what is remembered of a decided trace, to judge its late
// events: its errors, without the events themselves, and which were sent.
type decision struct {
	errs   []rootcause.Error
	sent   []bool // sent[i] says whether errs[i] was sent
	failed bool   // the strategy failed and every event was sent
	// placeholder marks the decision a trace has between the decider taking
	// its window and remembering what it decided.
	placeholder bool
}

// maxRemembered bounds the errors remembered for one trace. The sent ones
// are remembered first: they are what suppresses a late event.
const maxRemembered = 16

// maxSummaryText bounds the message a summary keeps: it is shown in the
// "dedup" context and compared for repeats, never sent in full.
const maxSummaryText = 256

// summary returns e without its event and with its message cut to
// maxSummaryText bytes, copied so that it keeps nothing of the event alive.
func summary(e rootcause.Error) rootcause.Error {
	e.Event = nil
	if len(e.Message) > maxSummaryText {
		e.Message = string([]byte(e.Message[:maxSummaryText]))
	}
	return e
}

// remember returns d with e added. When d is full, a sent e takes the place
// of the newest error d remembers that was not sent, and an e not sent is
// left out: forgetting a suppressed error can only leave a later event
// unexplained, and so sent. It never changes the arrays d shares with
// readers that copied it.
func (d decision) remember(e rootcause.Error, sent bool) decision {
	e = summary(e) // the memory must not keep the event alive
	d.placeholder = false
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

// bytes estimates the heap d holds.
func (d decision) bytes() int64 {
	n := int64(64 + len(d.sent))
	for i := range d.errs {
		n += summaryBytes(&d.errs[i])
	}
	return n
}

// summaryBytes estimates the heap of one summary: the struct and its
// strings (ids are short; the message is cut to maxSummaryText).
func summaryBytes(e *rootcause.Error) int64 {
	return int64(unsafe.Sizeof(*e)) + int64(len(e.EventID)+len(e.TraceID)+len(e.SpanID)+len(e.ParentSpanID)+
		len(e.LastChild)+len(e.Service)+len(e.ExceptionType)+len(e.Message)) + int64(len(e.Ancestors))*(16+16)
}

// memory remembers a value for each key for ttl, evicting the oldest first
// once it holds more than max keys or more than maxBytes by its values'
// sizes. It is guarded by its owner's lock.
type memory[K comparable, V any] struct {
	ttl      time.Duration
	max      int
	maxBytes int64
	size     func(V) int64
	m        map[K]remembered[V]
	order    []K // keys by when they were first put, oldest first from head
	head     int
	bytes    int64
}

type remembered[V any] struct {
	at    time.Time
	v     V
	bytes int64
}

func newMemory[K comparable, V any](max int, maxBytes int64, ttl time.Duration, size func(V) int64) *memory[K, V] {
	return &memory[K, V]{ttl: ttl, max: max, maxBytes: maxBytes, size: size, m: make(map[K]remembered[V])}
}

// put remembers v for key from now. A key put again keeps its place in the
// eviction order (it is evicted by when it was first put), unless it is the
// oldest when the memory is full: it is never evicted by its own put.
func (m *memory[K, V]) put(key K, now time.Time, v V) {
	r := remembered[V]{at: now, v: v, bytes: m.size(v)}
	old, ok := m.m[key]
	m.m[key] = r
	m.bytes += r.bytes - old.bytes
	if !ok {
		m.order = append(m.order, key)
	}
	for len(m.m) > 1 && (len(m.m) > m.max || m.bytes > m.maxBytes) {
		if m.order[m.head] == key {
			// The key just put is the oldest: it goes to the back, and
			// the next oldest is evicted in its place.
			m.order[m.head] = *new(K)
			m.head++
			m.order = append(m.order, key)
			continue
		}
		m.evictOldest()
	}
}

func (m *memory[K, V]) evictOldest() {
	k := m.order[m.head]
	var zero K
	m.order[m.head] = zero
	m.head++
	if r, ok := m.m[k]; ok {
		m.bytes -= r.bytes
		delete(m.m, k)
	}
	if m.head > len(m.order)/2 && m.head > 32 {
		m.order = slices.Clone(m.order[m.head:])
		m.head = 0
	}
}

func (m *memory[K, V]) get(key K, now time.Time) (V, bool) {
	r, ok := m.m[key]
	if !ok || now.Sub(r.at) > m.ttl {
		var zero V
		return zero, false
	}
	return r.v, true
}

// getIfAny is get at the present time, without reading the clock when
// nothing at all is remembered.
func (m *memory[K, V]) getIfAny(key K) (V, bool) {
	if len(m.m) == 0 {
		var zero V
		return zero, false
	}
	return m.get(key, time.Now())
}
