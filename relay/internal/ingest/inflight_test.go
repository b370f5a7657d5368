package ingest

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// The budget of bodies in flight: one request alone always has room; a
// second waits (429) while the first holds the budget, and has room once
// it released it.
func TestBodiesInFlightAreBounded(t *testing.T) {
	h := &Handler{cfg: newConfig([]Option{WithMaxInFlight(100)})}
	var first, second int64
	assert.True(t, h.hold(&first, 150), "alone, past the budget")
	assert.True(t, h.hold(&first, 50), "and growing")
	assert.False(t, h.hold(&second, 10), "another while the first holds the budget")
	h.inFlight.Add(-first)
	assert.True(t, h.hold(&second, 10))
	assert.Equal(t, int64(10), h.inFlight.Load())

	unbounded := &Handler{cfg: newConfig(nil)}
	var any int64
	assert.True(t, unbounded.hold(&any, 1<<40))
}
