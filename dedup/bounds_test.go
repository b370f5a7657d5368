package dedup_test

import (
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
	"weak"

	"github.com/getsentry/sentry-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/internal/sentrytest"
	"github.com/tracedup/tracedup/rootcause"
)

// bigEvent returns an error event of trace i that holds about kb KiB in a
// request body, as an event with a large payload does.
func bigEvent(i, kb int) *sentry.Event {
	ev := errEvent(fmt.Sprintf("%032x", i+1), "00000000000000c3", "", "payment", "*main.PaymentDeclined")
	ev.EventID = sentry.EventID(fmt.Sprintf("%032x", i+1))
	ev.Request = &sentry.Request{Data: strings.Repeat("x", kb<<10)}
	return ev
}

// The windows hold at most five eighths of WithMaxBytes by the events' estimates,
// whatever the number of traces and however stuck the inner transport is;
// past it the Transport degrades by deciding early, passing through and
// dropping, and counts each.
func TestHeldBytesStayWithinBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const budget = 8 << 20
		inner := &blockingTransport{Transport: sentrytest.NewTransport(), release: make(chan struct{})}
		tr := dedup.NewTransport(inner, dedup.WithMaxBytes(budget))
		var most uint64
		for i := range 400 { // 400 × 100 KiB: five times the budget
			tr.SendEvent(bigEvent(i, 100))
			s := tr.Stats()
			most = max(most, s.HeldBytes)
			require.LessOrEqual(t, s.HeldBytes, uint64(budget*5/8), "after %d events: %+v", i+1, s)
			assertInvariant(t, s)
		}
		s := tr.Stats()
		assert.Greater(t, most, uint64(budget*5/16), "the windows used their share")
		assert.NotZero(t, s.DecidedEarly, "decided early: %+v", s)
		assert.NotZero(t, s.Overflow+s.QueueFull, "passed through or dropped, and counted: %+v", s)
		close(inner.release)
		tr.Close()
		assertInvariant(t, tr.Stats())
	})
}

// An event's estimate follows the heap it holds, within the factor that
// eventBytes documents, for events of 13 KB to 1 MB of frames, context
// lines, vars, breadcrumbs and a request body.
func TestEventBytesTracksTheHeap(t *testing.T) {
	for _, size := range []struct{ frames, crumbs, body int }{{10, 0, 0}, {50, 100, 64 << 10}, {200, 100, 512 << 10}} {
		t.Run(fmt.Sprintf("frames=%d,crumbs=%d,body=%d", size.frames, size.crumbs, size.body), func(t *testing.T) {
			const n = 20
			events := make([]*sentry.Event, n)
			before := heapAlloc()
			for i := range events {
				events[i] = realEvent(i, size.frames, size.crumbs, size.body)
			}
			measured := float64(heapAlloc()-before) / n
			estimate := float64(dedup.EventBytes(events[0]))
			runtime.KeepAlive(events)
			ratio := estimate / measured
			t.Logf("estimate %.0f B, heap %.0f B, ratio %.2f", estimate, measured, ratio)
			assert.InDelta(t, 1, ratio, 0.25, "estimate %.0f B for a heap of %.0f B", estimate, measured)
		})
	}
}

// realEvent builds an event of its own strings as a capture does: frames
// with five context lines on each side and a few vars, breadcrumbs with data,
// and a request body.
func realEvent(i, frames, crumbs, body int) *sentry.Event {
	ev := errEvent(fmt.Sprintf("%032x", i+1), "00000000000000c3", "", "payment", "*main.PaymentDeclined")
	line := func(k int) string {
		return fmt.Sprintf("\tif err := charge(ctx, order%d, card); err != nil { // line %d", i, k)
	}
	st := &sentry.Stacktrace{}
	for f := range frames {
		fr := sentry.Frame{Function: fmt.Sprintf("handler%d.func%d", i, f), Module: "github.com/example/shop/payment",
			Filename: "payment.go", AbsPath: fmt.Sprintf("/src/shop/payment/payment%d.go", f), Lineno: f, InApp: true,
			ContextLine: line(0), Vars: map[string]any{"order": fmt.Sprintf("order-%d-%d", i, f), "amount": 1234}}
		for k := range 5 {
			fr.PreContext = append(fr.PreContext, line(k+1))
			fr.PostContext = append(fr.PostContext, line(k+10))
		}
		st.Frames = append(st.Frames, fr)
	}
	ev.Exception[0].Stacktrace = st
	for c := range crumbs {
		ev.Breadcrumbs = append(ev.Breadcrumbs, &sentry.Breadcrumb{Category: "http", Message: fmt.Sprintf("GET /api/items/%d?page=%d", i, c),
			Data: map[string]any{"status_code": 200, "url": fmt.Sprintf("https://example.com/api/items/%d", c)}})
	}
	if body > 0 {
		ev.Request = &sentry.Request{URL: "https://example.com/orders", Method: "POST", Data: strings.Repeat(string(rune('a'+i%26)), body)}
	}
	return ev
}

// WithMaxCalls bounds the calls tracked at once: past it a call is not
// tracked and is counted, and an ended call makes room. One trace has at
// most 64.
func TestCallsAreBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := dedup.NewTransport(sentrytest.NewTransport(), dedup.WithMaxCalls(3))
		defer tr.Close()
		var calls []*dedup.Incoming
		for i := range 3 {
			in := tr.Incoming(spanCtx(t, fmt.Sprintf("%032x", i+1), "00000000000000a1"))
			require.NotNil(t, in)
			calls = append(calls, in)
		}
		assert.Nil(t, tr.Incoming(spanCtx(t, traceA, "00000000000000a1")), "past the cap")
		assert.Equal(t, uint64(1), tr.Stats().Untracked)
		calls[0].End()
		in := tr.Incoming(spanCtx(t, traceA, "00000000000000a1"))
		require.NotNil(t, in, "an ended call made room")
		in.End()
		calls[1].End()
		calls[2].End()

		big := dedup.NewTransport(sentrytest.NewTransport())
		defer big.Close()
		var same []*dedup.Incoming
		for i := range 64 {
			in := big.Incoming(spanCtx(t, traceB, fmt.Sprintf("%016x", i+1)))
			require.NotNil(t, in, "call %d of the trace", i)
			same = append(same, in)
		}
		assert.Nil(t, big.Incoming(spanCtx(t, traceB, "00000000000000ff")), "the 65th of one trace")
		assert.Equal(t, uint64(1), big.Stats().Untracked)
		for _, in := range same {
			in.End()
		}
	})
}

// An Incoming begun again while it still tracks a call (an adapter's bug)
// stops tracking the old call: the trace's end is still seen.
func TestBeginTwiceTracksOneCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := dedup.NewTransport(sentrytest.NewTransport(), dedup.WithMaxCalls(1))
		defer tr.Close()
		var in dedup.Incoming
		require.True(t, in.Begin(spanCtx(t, traceA, "00000000000000a1"), tr))
		require.True(t, in.Begin(spanCtx(t, traceB, "00000000000000a1"), tr), "the cap counts one call")
		tr.SendEvent(cascade(traceB)[0])
		in.End()
		assert.Equal(t, uint64(1), tr.Stats().RequestEnded, "B's only call ended")
		assert.Zero(t, tr.Stats().Untracked)
	})
}

// A storm in one trace stays off the strategy: an error that repeats the
// report its trace sent (same service and type, on a span of its own) is
// suppressed on arrival; one that is on the chain of a remembered error is
// judged as before.
func TestLateRepeatsAreSuppressedOnArrival(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var asked atomic.Int64
		s := rootcause.StrategyFunc(func(errs []rootcause.Error) int { asked.Add(1); return 0 })
		inner := sentrytest.NewTransport()
		tr := dedup.NewTransport(inner, dedup.WithStrategy(s))
		defer tr.Close()
		for _, ev := range cascade(traceA) {
			tr.SendEvent(ev)
		}
		time.Sleep(dedup.DefaultWindow)
		synctest.Wait()
		require.Len(t, inner.Events(), 1)
		before := asked.Load()

		var ptrs []weak.Pointer[sentry.Event]
		for i := range 1000 { // payment's call retried, each on a span of its own
			ev := errEvent(traceA, fmt.Sprintf("%016x", 0x1000+i), "00000000000000b2", "payment", "*main.PaymentDeclined")
			ptrs = append(ptrs, weak.Make(ev))
			tr.SendEvent(ev)
		}
		st := tr.Stats()
		assert.Equal(t, uint64(1000), st.LateSuppressed, "%+v", st)
		assert.Equal(t, before, asked.Load(), "no strategy call")
		runtime.GC()
		for _, p := range ptrs {
			require.Nil(t, p.Value(), "a repeat's event is let go at once")
		}

		// The order service's error again: it encloses payment's span, so
		// it is judged against the decision, not taken for a repeat.
		tr.SendEvent(errEvent(traceA, "00000000000000b2", "00000000000000a1", "order", "*main.ServiceCallFailed"))
		synctest.Wait()
		st = tr.Stats()
		assert.Equal(t, uint64(1001), st.LateSuppressed, "a cascade of the report: %+v", st)
		assert.Len(t, inner.Events(), 1)
		assertInvariant(t, st)
	})
}

// A repeat that arrives after its trace's report but was captured before
// it (another goroutine's, another host's clock) is the same origin: it is
// suppressed, not sent as the root of its repeats. The strategy here
// splits as Split does but is a Splitter, so that the repeat is judged by
// the decider rather than on arrival.
func TestLateRepeatCapturedEarlierIsSuppressed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inner := sentrytest.NewTransport()
		tr := dedup.NewTransport(inner, dedup.WithStrategy(rootcause.CascadeTypes(nil)))
		defer tr.Close()
		sent := errEvent(traceA, "00000000000000c3", "00000000000000b2", "payment", "*main.PaymentDeclined")
		tr.SendEvent(sent)
		time.Sleep(dedup.DefaultWindow)
		synctest.Wait()
		require.Len(t, inner.Events(), 1)

		repeat := errEvent(traceA, "00000000000000c4", "00000000000000b2", "payment", "*main.PaymentDeclined")
		repeat.Timestamp = sent.Timestamp.Add(-time.Second)
		tr.SendEvent(repeat)
		synctest.Wait()
		assert.Len(t, inner.Events(), 1, "the report stands for it")
		st := tr.Stats()
		assert.Equal(t, uint64(1), st.LateSuppressed, "%+v", st)
		assertInvariant(t, st)
	})
}

// An error event without a trace id passes through and is counted as such;
// a message without one is not an error, and only passes through.
func TestErrorsWithoutTraceAreCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inner := sentrytest.NewTransport()
		tr := dedup.NewTransport(inner)
		defer tr.Close()
		ev := errEvent(traceA, "00000000000000c3", "", "payment", "*main.PaymentDeclined")
		delete(ev.Tags, "otel.trace_id")
		delete(ev.Contexts, "trace")
		tr.SendEvent(ev)
		tr.SendEvent(sentry.NewEvent())
		synctest.Wait()
		st := tr.Stats()
		assert.Equal(t, uint64(1), st.NoTrace, "%+v", st)
		assert.Equal(t, uint64(2), st.PassedThrough, "%+v", st)
		assert.Len(t, inner.Events(), 2)
	})
}

// Late events that will acknowledge a call are queued past the late queue's
// bounds, so that what acknowledged is never dropped; the Transport must then
// stop acknowledging, or every call of a storm is acknowledged and queued
// past them, and the late queue grows without bound while the strategy is
// slow.
func TestAcknowledgedLateEventsKeepTheLateQueueBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		slow := rootcause.StrategyFunc(func(errs []rootcause.Error) int {
			<-release
			return rootcause.Default().RootCause(errs)
		})
		const maxQueue = 10
		inner := sentrytest.NewTransport()
		tr := dedup.NewTransport(inner, dedup.WithStrategy(slow), dedup.WithMaxQueueSize(maxQueue),
			dedup.WithMaxEventsPerTrace(2))
		// Two events decide the trace early; the decider is then stuck in
		// the strategy, and everything else of the trace is late.
		// A cascade of two: the strategy names its root.
		tr.SendEvent(cascade(traceA)[0])
		tr.SendEvent(cascade(traceA)[1])
		synctest.Wait()
		acked := 0
		const calls = 200
		for i := range calls {
			var in dedup.Incoming
			span := fmt.Sprintf("%016x", 0x1000+i)
			require.True(t, in.Begin(spanCtx(t, traceA, span), tr))
			tr.SendEvent(errEvent(traceA, span, "00000000000000a1", fmt.Sprintf("svc%d", i), fmt.Sprintf("*main.E%d", i)))
			if in.Reported() != "" {
				acked++
			}
			in.End()
		}
		n, _ := dedup.LateQueued(tr)
		s := tr.Stats()
		assert.LessOrEqual(t, n, 2*maxQueue, "the late queue holds %d events, WithMaxQueueSize is %d: %+v", n, maxQueue, s)
		assert.Less(t, acked, calls, "the Transport stopped acknowledging once the late queue filled: %+v", s)
		assertInvariant(t, s)
		close(release)
		require.True(t, tr.Flush(time.Minute))
		tr.Close()
		s = tr.Stats()
		assertInvariant(t, s)
		assert.Zero(t, s.Pending)
	})
}

// A symptom held in its window acknowledges its call with the id of the
// error it follows, the one whose report stands for it, not its own, which
// is never sent.
func TestSymptomAcknowledgesWithWhatItFollows(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := dedup.NewTransport(sentrytest.NewTransport())
		defer tr.Close()
		payment := cascade(traceA)[0] // on c3, a child of b2
		tr.SendEvent(payment)
		in := tr.Incoming(spanCtx(t, traceA, "00000000000000b2")) // begun after: payment did not acknowledge it
		defer in.End()
		tr.SendEvent(cascade(traceA)[1]) // order's, on b2: a symptom of payment's
		assert.Equal(t, string(payment.EventID), in.Reported())
	})
}

// A foreign dedup.suppressed tag is read capped: sums of it never overflow.
func TestStandsIsCapped(t *testing.T) {
	ev := errEvent(traceA, "00000000000000c3", "", "payment", "P")
	ev.Tags[dedup.TagSuppressed] = "9223372036854775807"
	assert.LessOrEqual(t, rootcause.FromEvent(ev).Stands, 1<<30)
}
