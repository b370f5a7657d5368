package dedup

// EventBytes is eventBytes, for the tests of its accuracy.
var EventBytes = eventBytes

// LateQueued returns how many late events wait for the decider, and their
// estimated bytes.
func LateQueued(t *Transport) (int, int64) {
	t.decider.mu.Lock()
	defer t.decider.mu.Unlock()
	return t.decider.lateEvents, t.decider.lateBytes
}

// OpenBytes returns the estimated bytes of the events in open windows.
func OpenBytes(t *Transport) int64 { return t.openBytes.Load() }
