package dedup_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/getsentry/sentry-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/internal/sentrytest"
	"github.com/tracedup/tracedup/rootcause"
	"github.com/tracedup/tracedup/sentryotel"
)

// Tests of windows run in testing/synctest bubbles: there time.Sleep moves
// the bubble's fake clock to the next timer at once, and synctest.Wait waits
// for the goroutines that timer woke. Nothing sleeps for real.

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// errEvent builds an error event as sentryotel stamps it.
func errEvent(traceID, spanID, parentID, service, typ string) *sentry.Event {
	ev := sentry.NewEvent()
	ev.EventID = sentry.EventID(fmt.Sprintf("%s-%s-%s", service, typ, spanID))
	ev.Level = sentry.LevelError
	ev.Timestamp = time.Now()
	ev.Exception = []sentry.Exception{{Type: typ, Value: service + " failed", Stacktrace: &sentry.Stacktrace{
		Frames: []sentry.Frame{{Function: "handle", Module: service}},
	}}}
	ev.Tags[sentryotel.TagTraceID] = traceID
	ev.Tags[sentryotel.TagSpanID] = spanID
	ev.Tags[sentryotel.TagServiceName] = service
	ev.Contexts["trace"] = sentry.Context{"trace_id": traceID, "span_id": spanID}
	if parentID != "" {
		ev.Contexts["trace"]["parent_span_id"] = parentID
	}
	return ev
}

const (
	traceA = "0af7651916cd43dd8448eb211c80319c"
	traceB = "4bf92f3577b34da6a3ce929d0e0e4736"
	traceC = "5cf92f3577b34da6a3ce929d0e0e4737"
)

// cascade returns the article's three errors of one trace, in the order
// they are captured: payment, order, gateway.
func cascade(traceID string) []*sentry.Event {
	return []*sentry.Event{
		errEvent(traceID, "00000000000000c3", "00000000000000b2", "payment", "*main.PaymentDeclined"),
		errEvent(traceID, "00000000000000b2", "00000000000000a1", "order", "*main.ServiceCallFailed"),
		errEvent(traceID, "00000000000000a1", "", "gateway", "*main.DownstreamError"),
	}
}

func assertInvariant(t *testing.T, s dedup.Stats) {
	t.Helper()
	assert.Equal(t, s.Received, s.Emitted+s.Suppressed+s.Pending+s.Dropped,
		"Received == Emitted + Suppressed + Pending + Dropped: %+v", s)
}

func TestCascadeBecomesOneReport(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inner := sentrytest.NewTransport()
		tr := dedup.NewTransport(inner)
		defer tr.Close()

		events := cascade(traceA)
		payment := events[0]
		wantException := payment.Exception
		for _, ev := range events {
			tr.SendEvent(ev)
			time.Sleep(100 * time.Millisecond) // the cascade unwinds
		}
		synctest.Wait()
		assert.Empty(t, inner.Events(), "held for the window")
		s := tr.Stats()
		assert.Equal(t, uint64(3), s.Pending)
		assert.Equal(t, uint64(1), s.Traces)

		time.Sleep(dedup.DefaultWindow)
		synctest.Wait()

		got := inner.Events()
		require.Len(t, got, 1)
		assert.Same(t, payment, got[0], "the root cause is sent as captured")
		assert.Equal(t, wantException, got[0].Exception, "exception and stack trace intact")
		assert.Equal(t, "payment", got[0].Tags[sentryotel.TagServiceName])
		assert.Equal(t, "2", got[0].Tags[dedup.TagSuppressed])
		dc := got[0].Contexts[dedup.ContextKey]
		assert.Equal(t, 2, dc["suppressed"])
		assert.Equal(t, traceA, dc["trace_id"])
		assert.Equal(t, "Deepest{tie:Earliest}", dc["strategy"])
		assert.Equal(t, []map[string]string{
			{"event_id": string(events[1].EventID), "service": "order", "exception_type": "*main.ServiceCallFailed", "message": "order failed", "span_id": "00000000000000b2"},
			{"event_id": string(events[2].EventID), "service": "gateway", "exception_type": "*main.DownstreamError", "message": "gateway failed", "span_id": "00000000000000a1"},
		}, dc["events"])

		s = tr.Stats()
		assertInvariant(t, s)
		assert.Equal(t, dedup.Stats{Received: 3, Emitted: 1, Suppressed: 2}, s)
	})
}

// A global flush timer, as in the original article, ticking at 5 s would
// split trace B, whose events come at 4 s and 6 s. Per-trace windows do not.
func TestWindowOpensAtTraceFirstEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inner := sentrytest.NewTransport()
		tr := dedup.NewTransport(inner, dedup.WithWindow(5*time.Second))
		defer tr.Close()
		a, b := cascade(traceA), cascade(traceB)

		tr.SendEvent(a[0]) // t=0: A's window runs to 5 s
		time.Sleep(4 * time.Second)
		tr.SendEvent(b[0]) // t=4: B's window runs to 9 s
		time.Sleep(time.Second)
		synctest.Wait() // t=5: A ends, where a global tick would flush B too
		require.Len(t, inner.Events(), 1)
		assert.Same(t, a[0], inner.Events()[0])

		time.Sleep(time.Second)
		tr.SendEvent(b[1]) // t=6
		tr.SendEvent(b[2])
		time.Sleep(3*time.Second - time.Nanosecond)
		synctest.Wait()
		require.Len(t, inner.Events(), 1, "B still held just before 9 s")

		time.Sleep(time.Nanosecond)
		synctest.Wait()
		got := inner.Events()
		require.Len(t, got, 2, "B is one report")
		assert.Same(t, b[0], got[1])
		assert.Equal(t, "2", got[1].Tags[dedup.TagSuppressed])
	})
}

func TestPassThroughAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inner := sentrytest.NewTransport()
		tr := dedup.NewTransport(inner)
		defer tr.Close()

		noTrace := sentry.NewEvent()
		noTrace.EventID = "no-trace"
		tx := errEvent(traceA, "00000000000000a1", "", "gateway", "")
		tx.Type = "transaction"
		// sentry-go's own propagation context: typed ids, not OTel's.
		sentryOwn := sentry.NewEvent()
		sentryOwn.Contexts["trace"] = sentry.Context{"trace_id": sentry.TraceID{1}, "span_id": sentry.SpanID{2}}

		tr.SendEvent(noTrace)
		tr.SendEvent(tx)
		tr.SendEvent(sentryOwn)
		tr.SendEvent(nil)
		synctest.Wait() // handed over by the emitter, with no wait for a window

		assert.Equal(t, []*sentry.Event{noTrace, tx, sentryOwn}, inner.Events())
		s := tr.Stats()
		assertInvariant(t, s)
		assert.Equal(t, dedup.Stats{Received: 3, Emitted: 3, PassedThrough: 3}, s)
	})
}

func TestTraceIDFromContextOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inner := sentrytest.NewTransport()
		tr := dedup.NewTransport(inner)
		defer tr.Close()
		// As sentry-go's NewOtelIntegration links an event: ids in the
		// trace context only.
		for _, ev := range cascade(traceA) {
			delete(ev.Tags, sentryotel.TagTraceID)
			delete(ev.Tags, sentryotel.TagSpanID)
			tr.SendEvent(ev)
		}
		time.Sleep(dedup.DefaultWindow)
		synctest.Wait()
		require.Len(t, inner.Events(), 1)
		assert.Equal(t, "2", inner.Events()[0].Tags[dedup.TagSuppressed])
	})
}

func TestLateEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inner := sentrytest.NewTransport()
		tr := dedup.NewTransport(inner, dedup.WithMemory(time.Minute, 0))
		defer tr.Close()
		ev := cascade(traceA)

		tr.SendEvent(ev[0]) // payment
		tr.SendEvent(ev[1]) // order
		time.Sleep(dedup.DefaultWindow)
		synctest.Wait()
		require.Len(t, inner.Events(), 1)

		// The gateway's error comes after the report: a cascade of it.
		tr.SendEvent(ev[2])
		synctest.Wait()
		assert.Len(t, inner.Events(), 1, "late cascade suppressed")

		// An error deeper than the payment error is a root cause of its own.
		deeper := errEvent(traceA, "00000000000000d4", "00000000000000c3", "bank", "*main.Timeout")
		tr.SendEvent(deeper)
		synctest.Wait()
		require.Len(t, inner.Events(), 2)
		assert.Same(t, deeper, inner.Events()[1])

		s := tr.Stats()
		assertInvariant(t, s)
		assert.Equal(t, dedup.Stats{Received: 4, Emitted: 2, Suppressed: 2, Late: 2, LateSuppressed: 1}, s)

		// Past the memory, the trace starts afresh.
		time.Sleep(time.Minute + time.Second)
		again := errEvent(traceA, "00000000000000a1", "", "gateway", "*main.DownstreamError")
		tr.SendEvent(again)
		assert.Equal(t, uint64(1), tr.Stats().Pending)
		time.Sleep(dedup.DefaultWindow)
		synctest.Wait()
		require.Len(t, inner.Events(), 3)
		assert.Same(t, again, inner.Events()[2])
	})
}

func TestMemoryIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inner := sentrytest.NewTransport()
		// 64 shards: remembering 1 trace per shard at most.
		tr := dedup.NewTransport(inner, dedup.WithMemory(time.Hour, 1))
		defer tr.Close()
		const n = 2000
		for i := range n {
			tr.SendEvent(errEvent(fmt.Sprintf("%032x", i+1), "00000000000000c3", "00000000000000b2", "payment", "P"))
		}
		time.Sleep(dedup.DefaultWindow)
		synctest.Wait()
		// Every trace's order error, on the payment span's parent, comes
		// late; only the remembered decisions can suppress theirs.
		for i := range n {
			tr.SendEvent(errEvent(fmt.Sprintf("%032x", i+1), "00000000000000b2", "00000000000000a1", "order", "O"))
		}
		synctest.Wait()
		s := tr.Stats()
		assert.LessOrEqual(t, s.LateSuppressed, uint64(64), "at most one decision per shard remembered")
		assert.Equal(t, uint64(n)-s.LateSuppressed, s.Pending, "the rest opened new windows")
	})
}

// Past a bound, the oldest trace is decided early and its later events are
// judged as late ones: nothing passes through undecided.
func TestBoundsDecideEarly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inner := sentrytest.NewTransport()
		tr := dedup.NewTransport(inner, dedup.WithMaxTraces(1), dedup.WithMaxEventsPerTrace(2))
		defer tr.Close()
		a := cascade(traceA)
		// Two traces of one shard: find B's stand-in that shares A's shard
		// is not possible from outside, so bound events per trace instead.
		tr.SendEvent(a[0])
		tr.SendEvent(a[1]) // A reaches WithMaxEventsPerTrace: decided now
		synctest.Wait()
		require.Len(t, inner.Events(), 1, "decided early, before its window")
		assert.Same(t, a[0], inner.Events()[0])
		tr.SendEvent(a[2]) // judged against the decision: a symptom
		synctest.Wait()
		assert.Len(t, inner.Events(), 1)
		s := tr.Stats()
		assertInvariant(t, s)
		assert.Equal(t, dedup.Stats{Received: 3, Emitted: 1, Suppressed: 2, Late: 1, LateSuppressed: 1, DecidedEarly: 1}, s)
	})
}

// TestHeldEventsBudget fills one shard's share of the budget: the oldest
// traces are decided early, and nothing passes through.
func TestHeldEventsBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inner := sentrytest.NewTransport()
		// Three events per shard: a trace's cascade fits; the next trace of
		// a shard has the older decided early.
		tr := dedup.NewTransport(inner, dedup.WithMaxHeldEvents(3*64))
		defer tr.Close()
		const traces = 1000
		for i := range traces {
			for _, ev := range cascade(traceID(i)) {
				tr.SendEvent(ev)
				synctest.Wait() // the decider keeps up, as it does at real rates
			}
		}
		s := tr.Stats()
		assertInvariant(t, s)
		assert.LessOrEqual(t, s.Traces, uint64(2*64), "%+v", s)
		assert.LessOrEqual(t, s.Pending, uint64(2*3*64), "%+v", s)
		assert.Zero(t, s.Overflow, "%+v", s)
		assert.NotZero(t, s.DecidedEarly, "%+v", s)
		require.True(t, tr.Flush(time.Second))
		s = tr.Stats()
		assert.Equal(t, uint64(traces), s.Emitted, "one report per trace: %+v", s)
		assert.Equal(t, uint64(2*traces), s.Suppressed, "%+v", s)
	})
}

func TestStrategyFailureSendsEverything(t *testing.T) {
	for name, s := range map[string]rootcause.Strategy{
		"panics":       rootcause.StrategyFunc(func([]rootcause.Error) int { panic("bad heuristic") }),
		"index -1":     rootcause.StrategyFunc(func([]rootcause.Error) int { return -1 }),
		"index beyond": rootcause.StrategyFunc(func(errs []rootcause.Error) int { return len(errs) }),
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				inner := sentrytest.NewTransport()
				tr := dedup.NewTransport(inner, dedup.WithStrategy(s))
				defer tr.Close()
				ev := cascade(traceA)
				for _, e := range ev {
					tr.SendEvent(e)
				}
				time.Sleep(dedup.DefaultWindow)
				synctest.Wait()
				// Payment's is sent; order's, captured on the span that
				// encloses payment's, and the gateway's, on the span that
				// encloses order's, were known to follow from it as they
				// arrived, and were never held in full.
				assert.ElementsMatch(t, []*sentry.Event{ev[0]}, inner.Events())
				for _, e := range inner.Events() {
					assert.NotContains(t, e.Tags, dedup.TagSuppressed)
				}
				st := tr.Stats()
				assertInvariant(t, st)
				assert.Equal(t, uint64(1), st.StrategyFailures)
				assert.Equal(t, uint64(1), st.Emitted)
				assert.Equal(t, uint64(2), st.Suppressed)

				// A late event of a failed trace is sent: nothing to judge it by.
				tr.SendEvent(errEvent(traceA, "00000000000000a1", "", "gateway", "G"))
				synctest.Wait()
				assert.Len(t, inner.Events(), 2)
			})
		})
	}
}

func TestFlushSendsPendingThenFlushesInner(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inner := sentrytest.NewTransport()
		tr := dedup.NewTransport(inner)
		defer tr.Close()
		for _, e := range cascade(traceA) {
			tr.SendEvent(e)
		}
		tr.SendEvent(cascade(traceB)[1])

		require.True(t, tr.Flush(time.Second))
		assert.Len(t, inner.Events(), 2, "both traces decided at once")
		_, flushes, _ := inner.Calls()
		assert.Equal(t, 1, flushes)
		assert.Equal(t, dedup.Stats{Received: 4, Emitted: 2, Suppressed: 2}, tr.Stats())

		// The windows were ended: their timers must not emit again.
		time.Sleep(dedup.DefaultWindow)
		synctest.Wait()
		assert.Len(t, inner.Events(), 2)
	})
}

func TestFlushHonoursContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inner := &blockingTransport{Transport: sentrytest.NewTransport(), release: make(chan struct{})}
		tr := dedup.NewTransport(inner)
		tr.SendEvent(cascade(traceA)[0])
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		assert.False(t, tr.FlushWithContext(ctx), "the inner transport is stuck")
		close(inner.release)
		tr.Close()
		assert.Len(t, inner.Events(), 1)
	})
}

// blockingTransport blocks in SendEvent until released.
type blockingTransport struct {
	*sentrytest.Transport
	release chan struct{}
}

func (b *blockingTransport) SendEvent(ev *sentry.Event) {
	<-b.release
	b.Transport.SendEvent(ev)
}

func TestCloseSendsPendingAndClosesInnerOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The inner transport loses what it is sent after Close, as
		// sentry-go's HTTPTransport does.
		inner := &closedTransport{Transport: sentrytest.NewTransport()}
		tr := dedup.NewTransport(inner)
		tr.Configure(sentry.ClientOptions{Dsn: "http://public@127.0.0.1/1"})
		for _, e := range cascade(traceA) {
			tr.SendEvent(e)
		}

		var wg sync.WaitGroup
		for range 3 {
			wg.Go(tr.Close)
		}
		wg.Wait()
		tr.Close()

		require.Len(t, inner.Events(), 1)
		configured, _, closes := inner.Calls()
		assert.Equal(t, 1, configured, "Configure passes through")
		assert.Equal(t, 1, closes)

		// After Close, events are not handed to the closed inner transport:
		// they are counted for what they are.
		tr.SendEvent(cascade(traceB)[0])
		tr.SendEvent(sentry.NewEvent())
		assert.True(t, tr.Flush(time.Second))
		synctest.Wait()
		assert.Zero(t, inner.lost.Load(), "events lost in the closed inner transport")
		s := tr.Stats()
		assertInvariant(t, s)
		assert.Equal(t, dedup.Stats{Received: 5, Emitted: 1, Suppressed: 2, Dropped: 2, AfterClose: 2}, s)
	})
}

// burstTransport records how many events arrive between two flushes.
type burstTransport struct {
	*sentrytest.Transport
	mu       sync.Mutex
	since    int
	maxBurst int
}

func (b *burstTransport) SendEvent(ev *sentry.Event) {
	b.mu.Lock()
	b.since++
	b.maxBurst = max(b.maxBurst, b.since)
	b.mu.Unlock()
	b.Transport.SendEvent(ev)
}

func (b *burstTransport) FlushWithContext(ctx context.Context) bool {
	b.mu.Lock()
	b.since = 0
	b.mu.Unlock()
	return b.Transport.FlushWithContext(ctx)
}

func TestBurstNeverOverflowsInner(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inner := &burstTransport{Transport: sentrytest.NewTransport()}
		tr := dedup.NewTransport(inner, dedup.WithMaxBurst(50))
		defer tr.Close()
		const traces = 1000
		for i := range traces {
			for _, e := range cascade(fmt.Sprintf("%032x", i+1)) {
				tr.SendEvent(e)
			}
		}
		time.Sleep(dedup.DefaultWindow) // every window ends at once
		synctest.Wait()
		assert.Len(t, inner.Events(), traces)
		assert.LessOrEqual(t, inner.maxBurst, 50)
	})
}

// TestConservationUnderConcurrency checks the invariant at every read while
// events, flushes and Close race, and that nothing is lost in the end.
func TestConservationUnderConcurrency(t *testing.T) {
	inner := sentrytest.NewTransport()
	tr := dedup.NewTransport(inner, dedup.WithWindow(time.Millisecond), dedup.WithMaxTraces(50), dedup.WithMaxEventsPerTrace(3))
	const senders, perSender = 8, 500
	var wg sync.WaitGroup
	for g := range senders {
		wg.Go(func() {
			for i := range perSender {
				ev := errEvent(fmt.Sprintf("%032x", (g*perSender+i)/4+1), strconv.Itoa(i), "", "svc", "E")
				if i%10 == 0 {
					delete(ev.Tags, sentryotel.TagTraceID)
					delete(ev.Contexts, "trace")
				}
				tr.SendEvent(ev)
			}
		})
	}
	stop := make(chan struct{})
	var checks sync.WaitGroup
	checks.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				assertInvariant(t, tr.Stats())
				tr.Flush(time.Second)
			}
		}
	})
	wg.Wait()
	tr.Close()
	close(stop)
	checks.Wait()

	s := tr.Stats()
	assertInvariant(t, s)
	assert.Equal(t, uint64(senders*perSender), s.Received)
	assert.Zero(t, s.Pending)
	assert.Equal(t, s.Emitted, uint64(len(inner.Events())), "every emitted event reached the inner transport")
	assert.NotZero(t, s.Suppressed)
}
