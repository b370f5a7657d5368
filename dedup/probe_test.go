package dedup_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/internal/sentrytest"
)

// An event sent after Close never reaches Sentry (it is counted AfterClose):
// it must not acknowledge the call it was captured in, or the caller would
// suppress its own errors as a cascade of a report that does not exist.
func TestEventAfterCloseAcknowledgesNothing(t *testing.T) {
	tr := dedup.NewTransport(sentrytest.NewTransport())
	in := served(t, tr, "00000000000000a1")
	defer in.End()
	tr.Close()
	tr.SendEvent(errEvent(traceA, "00000000000000a1", "", "svc", "E"))
	s := tr.Stats()
	assertInvariant(t, s)
	assert.Equal(t, uint64(1), s.AfterClose)
	assert.Empty(t, in.Reported(), "acknowledged an event that was dropped after Close")
}
