// Package fifo is a map bounded in size that forgets its oldest keys first.
package fifo

// Map holds at most Max keys; putting one more evicts the key put first. A
// key put again keeps its place in the eviction order. It is not safe for
// concurrent use: callers hold their own lock.
type Map[K comparable, V any] struct {
	max  int
	m    map[K]V
	ring []K // keys in the order they were first put
	next int // the ring slot to evict next, once the ring is full
}

// New returns an empty Map of at most size keys; size below 1 counts as 1.
func New[K comparable, V any](size int) *Map[K, V] {
	return &Map[K, V]{max: max(1, size), m: make(map[K]V)}
}

// Put sets k to v.
func (f *Map[K, V]) Put(k K, v V) {
	if _, ok := f.m[k]; ok {
		f.m[k] = v
		return
	}
	if len(f.ring) < f.max {
		f.ring = append(f.ring, k)
	} else {
		delete(f.m, f.ring[f.next])
		f.ring[f.next] = k
		f.next = (f.next + 1) % f.max
	}
	f.m[k] = v
}

// Get returns k's value and whether k is held.
func (f *Map[K, V]) Get(k K) (V, bool) {
	v, ok := f.m[k]
	return v, ok
}

// Len returns how many keys are held.
func (f *Map[K, V]) Len() int { return len(f.m) }
