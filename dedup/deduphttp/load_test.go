package deduphttp_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/internal/scenario"
	"github.com/tracedup/tracedup/internal/sentrytest"
	"github.com/tracedup/tracedup/sentryotel"
)

// stalled is a Sentry that does not keep up, in front of a recorder of what
// it was handed: its SendEvent blocks while blockSend is set, and its flushes
// hang until their context ends while hangFlush is set, as sentry-go's
// HTTPTransport does with a Sentry that does not answer.
type stalled struct {
	*sentrytest.Transport
	blockSend, hangFlush bool
	release              chan struct{} // closed by the test's cleanup
	flushing             chan struct{} // closed when a flush first hangs
	once                 sync.Once
}

func newStalled(blockSend, hangFlush bool) func(*sentrytest.Transport) *stalled {
	return func(r *sentrytest.Transport) *stalled {
		return &stalled{Transport: r, blockSend: blockSend, hangFlush: hangFlush,
			release: make(chan struct{}), flushing: make(chan struct{})}
	}
}

func (s *stalled) SendEvent(ev *sentry.Event) {
	if s.blockSend {
		<-s.release
		return // lost
	}
	s.Transport.SendEvent(ev)
}

func (s *stalled) FlushWithContext(ctx context.Context) bool {
	if !s.hangFlush {
		return s.Transport.FlushWithContext(ctx)
	}
	s.once.Do(func() { close(s.flushing) })
	select {
	case <-ctx.Done():
	case <-s.release:
	}
	return false
}

func (s *stalled) Flush(d time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return s.FlushWithContext(ctx)
}

// stalledPayment starts order calling payment, whose Sentry is stalled as
// blockSend and hangFlush say; payment's handler declines every charge.
func stalledPayment(t *testing.T, sys *scenario.System, blockSend, hangFlush bool, options ...dedup.Option) (pay, order *scenario.Service, stall *stalled) {
	t.Helper()
	pay = sys.Start(t, "payment", true, scenario.WithSentry(func(r *sentrytest.Transport) sentry.Transport {
		stall = newStalled(blockSend, hangFlush)(r)
		return stall
	}), scenario.WithDedup(options...))
	t.Cleanup(func() { close(stall.release) }) // runs before the services' cleanups
	order = sys.Start(t, "order", true)
	pay.Mux.Handle("POST /charge", scenario.Fail(&scenario.PaymentDeclined{}, http.StatusPaymentRequired))
	order.Mux.Handle("POST /orders", order.Forward(pay, "/charge"))
	return pay, order, stall
}

// unrelated returns an error event of a trace of its own, as a service's
// other requests capture them.
func unrelated(i int) *sentry.Event {
	ev := sentry.NewEvent()
	ev.EventID = sentry.EventID(fmt.Sprintf("%032x", i+1))
	ev.Level = sentry.LevelError
	ev.Exception = []sentry.Exception{{Type: "*main.Unrelated", Value: "unrelated"}}
	ev.Tags = map[string]string{
		sentryotel.TagTraceID: fmt.Sprintf("%032x", 1<<40+i),
		sentryotel.TagSpanID:  "00000000000000f1",
	}
	return ev
}

// Finding 1 of issue 15: a callee whose Sentry does not keep up must not
// acknowledge, or its callers' cascades are suppressed in favour of events
// that never arrive. Payment's Sentry blocks while payment is saturated by
// 20,000 unrelated errors; each of 200 failing calls must then reach order's
// Sentry as order's own error. Before, payment acknowledged all 200 and no
// incident reached either Sentry.
func TestSaturatedCalleeDoesNotAcknowledge(t *testing.T) {
	sys := newSystem()
	pay, order, _ := stalledPayment(t, sys, true, false)

	for i := range 20_000 {
		pay.Dedup.SendEvent(unrelated(i))
	}
	// The deduplicator's own goroutines decide what the flood becomes; what
	// matters is that it sees its queue fill before the calls come.
	require.Eventually(t, func() bool { s := pay.Dedup.Stats(); return s.QueueFull+s.Overflow > 0 },
		10*time.Second, time.Millisecond, "payment's queue fills: %+v", pay.Dedup.Stats())

	const calls = 200
	for range calls {
		sys.Request(t, "order", "/orders")
	}
	require.True(t, order.Client.Flush(10*time.Second))
	got := 0
	for _, ev := range order.Recorder.Events() {
		if ev.Exception[len(ev.Exception)-1].Type == scenario.TypePrefix+"CallFailed" {
			got++
		}
	}
	assert.Equal(t, calls, got, "every failing call reaches order's Sentry: %+v", order.Dedup.Stats())
	s := pay.Dedup.Stats()
	assert.Equal(t, uint64(calls), s.NotAcknowledged, "payment says why it did not acknowledge: %+v", s)
	assert.Zero(t, order.Dedup.Stats().Cascades)
}

// The same at shutdown: payment acknowledged an event while its Sentry was
// slow to flush; its Close must hand that event over rather than abandon it
// behind a flush that hangs. Before, Close waited out its deadline behind
// the burst's flush and counted the acknowledged event abandoned, while
// order had suppressed its own.
func TestClosingCalleeHandsOverWhatItAcknowledged(t *testing.T) {
	sys := newSystem()
	pay, order, payStall := stalledPayment(t, sys, false, true, dedup.WithMaxBurst(10))

	// A burst of the service's other events: the flush after it hangs.
	for range 10 {
		pay.Dedup.SendEvent(sentry.NewEvent())
	}
	<-payStall.flushing
	sys.Request(t, "order", "/orders")
	require.True(t, order.Client.Flush(10*time.Second))
	require.Empty(t, order.Recorder.Events(), "order stands behind payment's acknowledgement")

	pay.Dedup.Close()
	s := pay.Dedup.Stats()
	assert.Zero(t, s.Abandoned, "%+v", s)
	declined := 0
	for _, ev := range pay.Recorder.Events() {
		if len(ev.Exception) > 0 && ev.Exception[len(ev.Exception)-1].Type == scenario.TypePrefix+"PaymentDeclined" {
			declined++
		}
	}
	assert.Equal(t, 1, declined, "the acknowledged event was handed to payment's Sentry transport")
}

// A router that starts the request's span inside the handler deduphttp
// wraps (otelgin in a gin engine; here otelhttp inside it): the call is
// tracked from its first error event, so the cascade collapses, and the
// request's end still decides the trace. Before, nothing was tracked: no
// header, both errors sent, and every report waited out the window.
func TestSpanStartedInsideTheHandler(t *testing.T) {
	sys := newSystem()
	pay := sys.Start(t, "payment", true, scenario.WithSpanInside())
	order := sys.Start(t, "order", true, scenario.WithSpanInside())
	pay.Mux.Handle("POST /charge", scenario.Fail(&scenario.PaymentDeclined{}, http.StatusPaymentRequired))
	order.Mux.Handle("POST /orders", order.Forward(pay, "/charge"))

	const requests = 20
	for range requests {
		sys.Request(t, "order", "/orders")
	}
	ps, os := pay.Dedup.Stats(), order.Dedup.Stats()
	assert.Equal(t, uint64(requests), ps.RequestEnded, "payment's requests ended its windows: %+v", ps)
	assert.Equal(t, uint64(requests), os.Cascades, "order's errors stood behind payment's: %+v", os)
	got := sys.Sent(t)
	require.Len(t, got, requests)
	for _, what := range got {
		assert.Equal(t, "payment: PaymentDeclined", what)
	}
}
