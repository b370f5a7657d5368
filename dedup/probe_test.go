package dedup_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"testing"

	"github.com/getsentry/sentry-go"
	"github.com/stretchr/testify/assert"
	"go.opentelemetry.io/otel/trace"

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

// Everything at once: senders over overlapping traces (windows, late
// events, cascades acknowledged downstream), calls served and made, Flush,
// Stats and finally Close. The invariant holds at every read; no event is
// handed over twice or after Close; in the end nothing is pending and
// Emitted is exactly what the inner transport got.
func TestProbeEverythingAtOnce(t *testing.T) {
	inner := newCounting()
	tr := dedup.NewTransport(inner, dedup.WithWindow(2*time.Millisecond), dedup.WithRequestGrace(time.Millisecond),
		dedup.WithMaxTraces(64), dedup.WithMaxEventsPerTrace(4), dedup.WithMaxQueueSize(64))
	const traces = 12
	traceOf := func(i int) trace.TraceID {
		id, _ := trace.TraceIDFromHex(fmt.Sprintf("%032x", i%traces+1))
		return id
	}
	ctxOf := func(tid trace.TraceID, span int) context.Context {
		sid, _ := trace.SpanIDFromHex(fmt.Sprintf("%016x", span+1))
		return trace.ContextWithSpanContext(context.Background(),
			trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}))
	}
	var sent atomic.Int64
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			for i := range 300 {
				tid := traceOf(g + i)
				span := i % 5
				in := tr.Incoming(ctxOf(tid, span))
				if i%3 == 0 {
					// A call made from span, acknowledged downstream.
					tr.Outgoing(ctxOf(tid, span), "op", fmt.Sprintf("%032x", i+1))
				}
				if i%7 == 0 {
					tr.Outgoing(ctxOf(tid, span), "op", "") // a retry that succeeded
				}
				ev := errEvent(tid.String(), fmt.Sprintf("%016x", span+1), fmt.Sprintf("%016x", span+2), fmt.Sprint("svc", g%2), fmt.Sprint("E", i%3))
				if i%11 == 0 {
					ev = sentry.NewEvent() // passes through
				}
				tr.SendEvent(ev)
				sent.Add(1)
				in.End()
				if i%2 == 0 {
					in.End() // twice
				}
				_ = in.Reported()
			}
		})
	}
	stop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			s := tr.Stats()
			assertInvariant(t, s)
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			tr.FlushWithContext(ctx)
			cancel()
		}
	})
	wg.Wait()
	assert.True(t, tr.Flush(5*time.Second))
	s := tr.Stats()
	assertInvariant(t, s)
	assert.Zero(t, s.Pending, "%+v", s)
	tr.Close()
	close(stop)
	bg.Wait()

	s = tr.Stats()
	assertInvariant(t, s)
	assert.Equal(t, uint64(sent.Load()), s.Received)
	assert.Zero(t, s.Pending, "%+v", s)
	assert.Zero(t, s.Dropped-s.QueueFull, "nothing but a full queue drops here: %+v", s)
	assert.Zero(t, inner.twice(), "events handed over twice")
	assert.Zero(t, inner.afterClosed.Load(), "events handed over after Close")
	assert.Equal(t, s.Emitted, uint64(len(inner.Events())), "Emitted is what the inner transport got")
	t.Logf("%+v", s)
}

// countingTransport counts, per event, how often it was handed over, and
// counts events handed over after Close.
type countingTransport struct {
	*sentrytest.Transport
	mu          sync.Mutex
	seen        map[*sentry.Event]int
	closed      atomic.Bool
	afterClosed atomic.Int64
}

func newCounting() *countingTransport {
	return &countingTransport{Transport: sentrytest.NewTransport(), seen: make(map[*sentry.Event]int)}
}

func (c *countingTransport) SendEvent(ev *sentry.Event) {
	if c.closed.Load() {
		c.afterClosed.Add(1)
	}
	c.mu.Lock()
	c.seen[ev]++
	c.mu.Unlock()
	c.Transport.SendEvent(ev)
}

func (c *countingTransport) Close() {
	c.closed.Store(true)
	c.Transport.Close()
}

// twice returns how many events were handed over more than once.
func (c *countingTransport) twice() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, k := range c.seen {
		if k > 1 {
			n++
		}
	}
	return n
}

// The acknowledgement's entry points take whatever context they are given:
// nil, no span, a non-recording span, an ended SDK span.
func TestProbeAckEntryPointsOnOddContexts(t *testing.T) {
	tr := dedup.NewTransport(sentrytest.NewTransport())
	defer tr.Close()
	tp := sentrytest.TracerProvider("svc")
	defer func() { _ = tp.Shutdown(context.Background()) }()
	_, ended := tp.Tracer("t").Start(context.Background(), "ended")
	ended.End()
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}})
	for name, ctx := range map[string]context.Context{
		"nil":           nil, //nolint:staticcheck // on purpose
		"background":    context.Background(),
		"non-recording": trace.ContextWithSpanContext(context.Background(), sc),
		"remote":        trace.ContextWithRemoteSpanContext(context.Background(), sc),
		"ended":         trace.ContextWithSpan(context.Background(), ended),
	} {
		assert.NotPanics(t, func() {
			in := tr.Incoming(ctx)
			tr.Outgoing(ctx, "op", "0af7651916cd43dd8448eb211c80319c")
			tr.Outgoing(ctx, "op", "")
			in.End()
			in.End()
			_ = in.Reported()
		}, name)
	}
}
