package dedup_test

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/getsentry/sentry-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/internal/keys"
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

// The live calls of a shard: an error event belongs to the call whose span
// it was captured in, whatever else the shard serves, and a call's end is
// its trace's last only when no other call of the trace is live.
func TestLiveCallsOfAShard(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := dedup.NewTransport(sentrytest.NewTransport())
		defer tr.Close()
		const sameShard = "4bf92f3577b34da6a3ce929d0e0e475c" // its last byte is traceA's modulo the shards
		outer := tr.Incoming(spanCtx(t, traceA, "00000000000000a1"))
		other := tr.Incoming(spanCtx(t, sameShard, "00000000000000a1"))
		nested := tr.Incoming(spanCtx(t, traceA, "00000000000000b2"))
		payment := cascade(traceA)[0] // captured on c3, a child of b2
		tr.SendEvent(payment)
		assert.Equal(t, string(payment.EventID), nested.Reported(), "the call it was captured in")
		assert.Empty(t, outer.Reported())
		assert.Empty(t, other.Reported(), "another trace's call")

		outer.End()
		assert.Zero(t, tr.Stats().RequestEnded, "a call of the trace is still live")
		other.End()
		assert.Zero(t, tr.Stats().RequestEnded, "another trace's end says nothing of this one")
		nested.End()
		assert.Equal(t, uint64(1), tr.Stats().RequestEnded, "the trace's last live call ended")
		nested.End()
		assert.Equal(t, uint64(1), tr.Stats().RequestEnded, "twice is harmless")

		// An event both calls enclose belongs to the newest, the nested one.
		deep := errEvent(traceB, "00000000000000d4", "00000000000000c3", "payment", "*main.LedgerError")
		deep.Contexts[keys.ContextTracedup] = sentry.Context{keys.AncestorsKey: "00000000000000c3,00000000000000b2,00000000000000a1"}
		outer2 := tr.Incoming(spanCtx(t, traceB, "00000000000000a1"))
		nested2 := tr.Incoming(spanCtx(t, traceB, "00000000000000b2"))
		tr.SendEvent(deep)
		assert.Equal(t, string(deep.EventID), nested2.Reported(), "the newest call that encloses it")
		assert.Empty(t, outer2.Reported())
		nested2.End()
		outer2.End()
		assert.Equal(t, uint64(2), tr.Stats().RequestEnded)

		assertInvariant(t, tr.Stats())
	})
}
