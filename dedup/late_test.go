package dedup_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/getsentry/sentry-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/internal/sentrytest"
	"github.com/tracedup/tracedup/rootcause"
)

// Tests of late events judged together: a trace's late events wait in one
// place and one strategy call judges many of them.

// costly returns the default strategy, made to cost d of the bubble's clock
// a call, as a real strategy costs time; calls counts its calls.
func costly(d time.Duration, calls *atomic.Int64) rootcause.Strategy {
	return rootcause.StrategyFunc(func(errs []rootcause.Error) int {
		calls.Add(1)
		time.Sleep(d)
		return rootcause.Default().RootCause(errs)
	})
}

// The storm of examples/storm at a small scale: a retry loop fails
// thousands of times in one trace after the trace was decided, faster than
// one strategy call per event could judge. Judged a chunk at a time, the
// late events keep within a small late queue: the storm is one report,
// with nothing passed undecided and nothing dropped.
func TestLateStormOfOneTraceIsOneReport(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int64
		inner := sentrytest.NewTransport()
		tr := dedup.NewTransport(inner, dedup.WithStrategy(costly(time.Millisecond, &calls)),
			dedup.WithMaxQueueSize(100))
		defer tr.Close()
		for _, ev := range cascade(traceA) {
			tr.SendEvent(ev)
		}
		time.Sleep(dedup.DefaultWindow + time.Millisecond) // the decision's call
		synctest.Wait()
		require.Len(t, inner.Events(), 1)
		calls.Store(0)

		// Ten retries of the payment call a millisecond, each on a span of
		// its own under the order service's span; a strategy call takes a
		// millisecond.
		const late = 5000
		for i := range late {
			tr.SendEvent(errEvent(traceA, fmt.Sprintf("%016x", 0x1000+i), "00000000000000b2", "payment", "*main.PaymentDeclined"))
			if i%10 == 9 {
				time.Sleep(time.Millisecond)
				assertInvariant(t, tr.Stats())
			}
		}
		require.True(t, tr.Flush(time.Minute))
		s := tr.Stats()
		assertInvariant(t, s)
		assert.Equal(t, 1, len(inner.Events()), "one incident, one report: %+v", s)
		assert.Equal(t, dedup.Stats{Received: late + 3, Emitted: 1, Suppressed: late + 2,
			Late: late, LateSuppressed: late}, s)
		// At most one call per millisecond of arrivals, each over a bounded
		// chunk of them.
		assert.LessOrEqual(t, calls.Load(), int64(late/10+1))
	})
}

// A trace's late events judged in one call: those that join the incident
// of the report already sent are suppressed; a new incident among them is
// one report, which stands for its repeats; an unrelated error is sent.
func TestLateEventsJudgedTogether(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var lateCalls atomic.Int64
		// Trace B's decision holds the decider while A's late events
		// arrive, so that they wait together.
		s := rootcause.StrategyFunc(func(errs []rootcause.Error) int {
			if errs[0].TraceID == traceB {
				<-release
			} else if len(errs) > 3 {
				lateCalls.Add(1)
			}
			return rootcause.Default().RootCause(errs)
		})
		inner := sentrytest.NewTransport()
		tr := dedup.NewTransport(inner, dedup.WithStrategy(s))
		defer tr.Close()
		for _, ev := range cascade(traceA) {
			tr.SendEvent(ev)
		}
		time.Sleep(dedup.DefaultWindow)
		synctest.Wait()
		require.Len(t, inner.Events(), 1)

		for _, ev := range cascade(traceB) {
			tr.SendEvent(ev)
		}
		time.Sleep(dedup.DefaultWindow) // B's decision waits for release
		synctest.Wait()

		// A second error on the gateway's span: a symptom of the payment
		// error reported.
		gateway := errEvent(traceA, "00000000000000a1", "", "gateway", "*main.DownstreamError")
		gateway.EventID = "gateway-again"
		// A bank timeout under the payment call explains it: an incident
		// deeper than the one reported, with two repeats.
		bank := []*sentry.Event{
			errEvent(traceA, "00000000000000d4", "00000000000000c3", "bank", "*main.Timeout"),
			errEvent(traceA, "00000000000000d5", "00000000000000c3", "bank", "*main.Timeout"),
			errEvent(traceA, "00000000000000d6", "00000000000000c3", "bank", "*main.Timeout"),
		}
		// An error of its own, linked to nothing.
		cache := errEvent(traceA, "00000000000000e5", "00000000000000e4", "cache", "*main.Evicted")
		for _, ev := range []*sentry.Event{gateway, bank[0], bank[1], cache, bank[2]} {
			tr.SendEvent(ev)
		}
		assert.Equal(t, uint64(3+5), tr.Stats().Pending, "A's late events wait behind B")
		close(release)
		synctest.Wait()

		got := inner.Events()
		require.Len(t, got, 4, "A's report, B's report, the bank's, the cache's")
		assert.Same(t, bank[0], got[2])
		// The bank's timeout explains the gateway's error too.
		assert.Equal(t, "3", bank[0].Tags[dedup.TagSuppressed], "the bank's report stands for its repeats and the gateway's error")
		listed := bank[0].Contexts[dedup.ContextKey]["events"].([]map[string]string)
		require.Len(t, listed, 3)
		assert.Equal(t, []string{"gateway-again", string(bank[1].EventID), string(bank[2].EventID)},
			[]string{listed[0]["event_id"], listed[1]["event_id"], listed[2]["event_id"]})
		assert.Same(t, cache, got[3])
		assert.Equal(t, int64(1), lateCalls.Load(), "one strategy call for A's late events")
		st := tr.Stats()
		assertInvariant(t, st)
		assert.Equal(t, dedup.Stats{Received: 11, Emitted: 4, Suppressed: 7, Late: 5, LateSuppressed: 3}, st)
	})
}
