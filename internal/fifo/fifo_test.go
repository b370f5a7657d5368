package fifo

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestEvictsOldestFirst(t *testing.T) {
	f := New[string, int](2)
	f.Put("a", 1)
	f.Put("b", 2)
	f.Put("a", 10) // updated, keeps its place: still the oldest
	f.Put("c", 3)

	_, ok := f.Get("a")
	assert.False(t, ok, "a was put first, so it goes first")
	v, ok := f.Get("b")
	assert.True(t, ok)
	assert.Equal(t, 2, v)
	v, _ = f.Get("c")
	assert.Equal(t, 3, v)
	assert.Equal(t, 2, f.Len())

	f.Put("d", 4) // evicts b
	_, ok = f.Get("b")
	assert.False(t, ok)
	assert.Equal(t, 2, f.Len())
}

func TestMinimumSizeIsOne(t *testing.T) {
	f := New[int, int](0)
	f.Put(1, 1)
	f.Put(2, 2)
	_, ok := f.Get(1)
	assert.False(t, ok)
	assert.Equal(t, 1, f.Len())
}
