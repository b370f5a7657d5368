package dedup_test

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/internal/sentrytest"
)

// spanCtx returns a context whose span is spanID in traceID.
func spanCtx(t *testing.T, traceID, spanID string) context.Context {
	t.Helper()
	tid, err := trace.TraceIDFromHex(traceID)
	require.NoError(t, err)
	sid, err := trace.SpanIDFromHex(spanID)
	require.NoError(t, err)
	return trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(
		trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
}

// An Incoming begun again after End serves the new call only: nothing of
// the ended one (its acknowledgement, its place among the live calls)
// carries over.
func TestIncomingBeginAgainCarriesNothingOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := dedup.NewTransport(sentrytest.NewTransport())
		defer tr.Close()
		var in dedup.Incoming
		assert.Empty(t, in.Reported(), "the zero Incoming tracks nothing")
		in.End() // and ending it does nothing

		require.True(t, in.Begin(spanCtx(t, traceA, "00000000000000c3"), tr))
		payment := cascade(traceA)[0]
		tr.SendEvent(payment)
		assert.Equal(t, string(payment.EventID), in.Reported())
		in.End()
		assert.Equal(t, uint64(1), tr.Stats().RequestEnded, "the first call was the trace's last live one")

		require.True(t, in.Begin(spanCtx(t, traceB, "00000000000000c3"), tr))
		assert.Empty(t, in.Reported(), "the ended call's acknowledgement is gone")
		tr.SendEvent(cascade(traceA)[1]) // traceA has no live call any more
		assert.Empty(t, in.Reported(), "an error of the ended call's trace is not this call's")
		tr.SendEvent(cascade(traceB)[0])
		assert.Equal(t, string(cascade(traceB)[0].EventID), in.Reported())
		in.End()

		assert.False(t, in.Begin(context.Background(), tr), "no span, nothing tracked")
		assert.Empty(t, in.Reported(), "an untracked Incoming acknowledges nothing")
		tr.SendEvent(cascade(traceB)[1])
		assert.Empty(t, in.Reported())
		in.End()
		assertInvariant(t, tr.Stats())
	})
}
