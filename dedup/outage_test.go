package dedup_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/getsentry/sentry-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/internal/sentrytest"
	"github.com/tracedup/tracedup/rootcause"
)

// Tests of the faults of an outage: an inner transport that blocks, panics
// or is closed, a slow or panicking strategy, and storms of errors.

// stuckTransport blocks in SendEvent until released, as a transport does
// when Sentry accepts connections and never answers.
type stuckTransport struct {
	*sentrytest.Transport
	release chan struct{}
	once    sync.Once
	entered atomic.Int64
}

func newStuck() *stuckTransport {
	return &stuckTransport{Transport: sentrytest.NewTransport(), release: make(chan struct{})}
}

func (s *stuckTransport) SendEvent(ev *sentry.Event) {
	s.entered.Add(1)
	<-s.release
	s.Transport.SendEvent(ev)
}

func (s *stuckTransport) FlushWithContext(ctx context.Context) bool {
	select {
	case <-s.release:
		return s.Transport.FlushWithContext(ctx)
	case <-ctx.Done():
		return false
	}
}

func (s *stuckTransport) Flush(d time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return s.FlushWithContext(ctx)
}

func (s *stuckTransport) unstick() { s.once.Do(func() { close(s.release) }) }

// returns reports whether f returns within d of the bubble's clock.
func returns(d time.Duration, f func()) bool {
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// Fault 1: Sentry unreachable. Decided events wait for the inner transport
// in a bounded queue, due windows wait within the budget of held events,
// and what does not fit is dropped and counted.
func TestStuckInnerHoldsABoundedQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inner := newStuck()
		defer inner.unstick()
		tr := dedup.NewTransport(inner)
		defer tr.Close()
		const traces = 20_000
		for i := range traces {
			tr.SendEvent(errEvent(traceID(i), "00000000000000c3", "", "payment", "P"))
			if i%1000 == 0 {
				time.Sleep(dedup.DefaultWindow) // Sentry stays unreachable
			}
		}
		time.Sleep(dedup.DefaultWindow)
		synctest.Wait()
		s := tr.Stats()
		assertInvariant(t, s)
		// Held in windows, queued, one being decided, one in flight.
		bound := uint64(2*dedup.DefaultMaxHeldEvents + dedup.DefaultMaxQueueSize + 2)
		assert.LessOrEqual(t, s.Pending, bound, "%+v", s)
		assert.Equal(t, traces-s.Pending, s.QueueFull, "%+v", s)
		assert.Equal(t, s.QueueFull, s.Dropped)
		assert.Equal(t, s.Overflow, s.QueueFull, "only undecided events dropped, no report: %+v", s)
	})
}

// panicTransport panics in SendEvent, and in FlushWithContext when asked.
type panicTransport struct {
	*sentrytest.Transport
	calls atomic.Int64
}

func (p *panicTransport) SendEvent(*sentry.Event) {
	p.calls.Add(1)
	panic("inner transport bug")
}

// Fault 2: a panicking inner transport neither crashes the process nor
// leaves events pending.
func TestInnerPanicIsRecovered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		handled := captureOtelErrors(t)
		inner := &panicTransport{Transport: sentrytest.NewTransport()}
		tr := dedup.NewTransport(inner)
		defer tr.Close()

		assert.NotPanics(t, func() { tr.SendEvent(sentry.NewEvent()) }, "pass-through")
		for _, ev := range cascade(traceA) {
			tr.SendEvent(ev)
		}
		time.Sleep(dedup.DefaultWindow)
		synctest.Wait()
		tr.SendEvent(sentry.NewEvent()) // the emitter carries on
		synctest.Wait()

		s := tr.Stats()
		assertInvariant(t, s)
		assert.Zero(t, s.Pending, "%+v", s)
		assert.Equal(t, int64(3), inner.calls.Load())
		assert.Equal(t, uint64(3), s.InnerPanics, "%+v", s)
		assert.Equal(t, uint64(3), s.Dropped, "%+v", s)
		errs := handled()
		require.Len(t, errs, 3)
		assert.Contains(t, errs[0].Error(), "inner transport bug")
		assert.Contains(t, errs[0].Error(), "outage_test.go", "the stack is kept")
	})
}

// Fault 3: Close has a deadline, and counts what it could not hand over.
func TestCloseHasADeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inner := newStuck()
		defer inner.unstick()
		tr := dedup.NewTransport(inner)
		for i := range 10 {
			tr.SendEvent(errEvent(traceID(i), "00000000000000c3", "", "payment", "P"))
		}
		start := time.Now()
		assert.True(t, returns(dedup.DefaultCloseTimeout+time.Second, tr.Close), "Close returned")
		assert.Equal(t, dedup.DefaultCloseTimeout, time.Since(start))
		s := tr.Stats()
		assertInvariant(t, s)
		// One event is in the stuck inner SendEvent: pending until it returns.
		assert.Equal(t, uint64(1), s.Pending, "%+v", s)
		assert.Equal(t, uint64(9), s.Abandoned, "%+v", s)
		inner.unstick()
		synctest.Wait()
		s = tr.Stats()
		assertInvariant(t, s)
		assert.Equal(t, uint64(1), s.Emitted)
		assert.Zero(t, s.Pending)
	})
}

// Fault 4: SendEvent never blocks on the inner transport.
func TestSendEventNeverBlocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inner := newStuck()
		defer inner.unstick()
		tr := dedup.NewTransport(inner, dedup.WithMaxEventsPerTrace(1), dedup.WithSendCascades())
		tx := sentry.NewEvent()
		tx.Type = "transaction"
		for name, ev := range map[string]*sentry.Event{
			"no trace":    sentry.NewEvent(),
			"transaction": tx,
			"late":        errEvent(traceB, "00000000000000c3", "", "payment", "P"),
		} {
			assert.True(t, returns(time.Second, func() { tr.SendEvent(ev) }), "%s blocked", name)
		}
		a := cascade(traceA)
		for _, ev := range a {
			assert.True(t, returns(time.Second, func() { tr.SendEvent(ev) }), "a trace past its bound blocked")
		}
		assert.True(t, returns(time.Minute, tr.Close))
		assert.True(t, returns(time.Second, func() { tr.SendEvent(sentry.NewEvent()) }), "after Close blocked")
		inner.unstick()
		synctest.Wait()
		assertInvariant(t, tr.Stats())
	})
}

// Fault 5: FlushWithContext returns by its deadline while a slow strategy
// runs.
func TestFlushHonoursDeadlineDuringSlowStrategy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		slow := rootcause.StrategyFunc(func(errs []rootcause.Error) int {
			time.Sleep(2 * time.Second)
			return 0
		})
		tr := dedup.NewTransport(sentrytest.NewTransport(), dedup.WithStrategy(slow))
		defer tr.Close()
		for _, ev := range cascade(traceA) {
			tr.SendEvent(ev)
		}
		// Repeats, so that the strategy is asked.
		tr.SendEvent(errEvent(traceA, "00000000000000c4", "00000000000000b2", "payment", "*main.PaymentDeclined"))
		start := time.Now()
		ok := tr.Flush(100 * time.Millisecond)
		assert.Equal(t, 100*time.Millisecond, time.Since(start), "Flush's time")
		assert.False(t, ok, "the strategy had not finished")
		assert.True(t, tr.Flush(time.Minute))
	})
}

// closedTransport loses what it is sent after Close, as sentry-go's
// HTTPTransport does once its worker has stopped.
type closedTransport struct {
	*sentrytest.Transport
	closed atomic.Bool
	lost   atomic.Int64
}

func (c *closedTransport) SendEvent(ev *sentry.Event) {
	if c.closed.Load() {
		c.lost.Add(1)
		return
	}
	c.Transport.SendEvent(ev)
}

func (c *closedTransport) Close() {
	c.closed.Store(true)
	c.Transport.Close()
}

// Fault 6: events after Close are not handed to a closed transport, and are
// counted for what they are.
func TestEventsAfterCloseAreCountedAsSuch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inner := &closedTransport{Transport: sentrytest.NewTransport()}
		tr := dedup.NewTransport(inner)
		tr.SendEvent(cascade(traceA)[0])
		tr.Close()
		tr.SendEvent(cascade(traceB)[0])
		tr.SendEvent(sentry.NewEvent())
		synctest.Wait()
		s := tr.Stats()
		assertInvariant(t, s)
		assert.Zero(t, inner.lost.Load(), "events handed to the closed inner transport")
		assert.Equal(t, uint64(len(inner.Events())), s.Emitted, "Emitted counts what the inner transport took")
		assert.Equal(t, uint64(2), s.AfterClose, "%+v", s)
	})
}

// Fault 7: a strategy that panics when judging a late event is counted.
func TestLateStrategyPanicIsCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		handled := captureOtelErrors(t)
		// One error alone never asks the strategy; a late symptom of it
		// does (a late repeat of the report would be suppressed on arrival
		// by the split's rule, whatever the strategy).
		s := rootcause.StrategyFunc(func([]rootcause.Error) int { panic("late bug") })
		inner := sentrytest.NewTransport()
		tr := dedup.NewTransport(inner, dedup.WithStrategy(s))
		defer tr.Close()
		tr.SendEvent(errEvent(traceA, "00000000000000c3", "00000000000000b2", "payment", "P"))
		time.Sleep(dedup.DefaultWindow)
		synctest.Wait()
		tr.SendEvent(errEvent(traceA, "00000000000000b2", "", "order", "O"))
		synctest.Wait()
		st := tr.Stats()
		assertInvariant(t, st)
		assert.Equal(t, uint64(1), st.StrategyFailures, "%+v", st)
		assert.Len(t, inner.Events(), 2, "when in doubt, send")
		require.Len(t, handled(), 1)
		assert.Contains(t, handled()[0].Error(), "late bug")
	})
}

// Fault 8: WithMaxTraces is a true bound, whatever the concurrency: each of
// the 64 shards holds ceil(n/64) open windows and as many due for a
// decision.
func TestMaxTracesIsExact(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := dedup.NewTransport(sentrytest.NewTransport(), dedup.WithMaxTraces(64))
		defer tr.Close()
		var wg sync.WaitGroup
		var most atomic.Uint64
		for g := range 16 {
			wg.Go(func() {
				for i := range 500 {
					tr.SendEvent(errEvent(traceID(g*1000+i), "00000000000000c3", "", "payment", "P"))
					if n := tr.Stats().Traces; n > most.Load() {
						most.Store(n)
					}
				}
			})
		}
		wg.Wait()
		assert.LessOrEqual(t, most.Load(), uint64(2*64))
		s := tr.Stats()
		assertInvariant(t, s)
		assert.NotZero(t, s.DecidedEarly, "decided early: %+v", s)
	})
}

// captureOtelErrors collects what is handed to otel.Handle until the test
// ends.
func captureOtelErrors(t *testing.T) func() []error {
	t.Helper()
	var mu sync.Mutex
	var errs []error
	restore := setOtelHandler(func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	})
	t.Cleanup(restore)
	return func() []error {
		mu.Lock()
		defer mu.Unlock()
		return append([]error(nil), errs...)
	}
}

var _ = fmt.Sprint

type handlerFunc func(error)

func (f handlerFunc) Handle(err error) { f(err) }

// setOtelHandler installs f as OTel's error handler and returns what puts
// the previous one back.
func setOtelHandler(f func(error)) func() {
	prev := otel.GetErrorHandler()
	otel.SetErrorHandler(handlerFunc(f))
	return func() { otel.SetErrorHandler(prev) }
}

// served starts serving a call of traceA on span spanID, as an adapter does.
func served(t *testing.T, tr *dedup.Transport, spanID string) *dedup.Incoming {
	t.Helper()
	tid, err := trace.TraceIDFromHex(traceA)
	require.NoError(t, err)
	sid, err := trace.SpanIDFromHex(spanID)
	require.NoError(t, err)
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	return tr.Incoming(trace.ContextWithSpanContext(context.Background(), sc))
}

// The end of the last call of a trace served here decides it a grace
// later, not when its window ends.
func TestRequestEndDecides(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inner := sentrytest.NewTransport()
		tr := dedup.NewTransport(inner)
		defer tr.Close()
		outer := served(t, tr, "00000000000000a1")
		nested := served(t, tr, "00000000000000b2") // a second call of the trace, in flight
		ev := cascade(traceA)
		tr.SendEvent(ev[0])
		tr.SendEvent(ev[1])
		nested.End()
		time.Sleep(time.Second)
		synctest.Wait()
		assert.Empty(t, inner.Events(), "a call of the trace is still served")

		tr.SendEvent(ev[2])
		start := time.Now()
		outer.End()
		outer.End() // twice is harmless
		time.Sleep(dedup.DefaultRequestGrace - time.Nanosecond)
		synctest.Wait()
		assert.Empty(t, inner.Events(), "held for the grace")
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		require.Len(t, inner.Events(), 1)
		assert.Equal(t, dedup.DefaultRequestGrace, time.Since(start))
		assert.Equal(t, "2", inner.Events()[0].Tags[dedup.TagSuppressed], "one report of the cascade")
		s := tr.Stats()
		assertInvariant(t, s)
		assert.Equal(t, uint64(1), s.RequestEnded)
	})
}

// Errors outside any served call keep the whole window.
func TestNoRequestKeepsTheWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inner := sentrytest.NewTransport()
		tr := dedup.NewTransport(inner)
		defer tr.Close()
		tr.SendEvent(cascade(traceA)[0])
		time.Sleep(dedup.DefaultWindow - time.Nanosecond)
		synctest.Wait()
		assert.Empty(t, inner.Events())
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		assert.Len(t, inner.Events(), 1)
	})
}
