// Command storm drives a dedup.Transport with its default options through
// error storms made of real-size events, and prints what it held at most,
// what it sent and how late the reports were:
//
//   - 1M events over 1M traces (one error each, a flood of unrelated failures);
//   - 100k events in one trace (a retry loop failing);
//   - 30k traces × 3 events (30k failing requests, each a three-service cascade);
//   - requests served through Incoming/End, to time the report after the
//     request's end.
//
// Events are copies of one that a real sentry-go client captured: four
// wrapped errors with their stack frames, about 13 KB each.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/getsentry/sentry-go"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/sentryotel"
)

func main() {
	scale := flag.Float64("scale", 1, "multiply every storm's size by this")
	only := flag.String("only", "", "run only the storms whose name contains this")
	flag.Parse()
	tpl := captured()
	fmt.Printf("event size: %d bytes (a real capture: %d exceptions, %d frames)\n",
		eventSize(tpl), len(tpl.Exception), len(tpl.Exception[len(tpl.Exception)-1].Stacktrace.Frames))
	fmt.Printf("budget: %d held events (×2 when due), queues of %d\n\n", dedup.DefaultMaxHeldEvents, dedup.DefaultMaxQueueSize)

	n := func(v int) int { return max(1, int(float64(v)**scale)) }
	run := func(name string) bool { return strings.Contains(name, *only) }
	if name := "1M events over 1M traces"; run(name) {
		storm(name, tpl, n(1_000_000), func(i int) (int, int) { return i, 0 })
	}
	if name := "100k events in one trace"; run(name) {
		storm(name, tpl, n(100_000), func(i int) (int, int) { return 0, i })
	}
	if name := "30k traces × 3 events"; run(name) {
		storm(name, tpl, 3*n(30_000), func(i int) (int, int) { return i / 3, i % 3 })
	}
	if run("requests") {
		requests(tpl, n(3000))
	}
}

// captured returns an event as a real sentry-go client captures it: a chain
// of wrapped errors, each with its stack trace.
func captured() *sentry.Event {
	rec := &recorder{}
	client, err := sentry.NewClient(sentry.ClientOptions{Dsn: "http://public@127.0.0.1/1", Transport: rec})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	hub := sentry.NewHub(client, sentry.NewScope())
	var capture func(depth int)
	capture = func(depth int) {
		if depth > 0 {
			capture(depth - 1)
			return
		}
		err := errors.New("card declined by issuer")
		err = fmt.Errorf("charge: %w", err)
		err = fmt.Errorf("payment service: %w", err)
		err = fmt.Errorf("order 123: %w", err)
		hub.CaptureException(err)
	}
	capture(8)
	return rec.last
}

type recorder struct{ last *sentry.Event }

func (r *recorder) Flush(time.Duration) bool              { return true }
func (r *recorder) FlushWithContext(context.Context) bool { return true }
func (r *recorder) Configure(sentry.ClientOptions)        {}
func (r *recorder) SendEvent(e *sentry.Event)             { r.last = e }
func (r *recorder) Close()                                {}

// clone copies tpl as deep as a capture would have built it: the event, its
// maps and its exceptions with their frames.
func clone(tpl *sentry.Event, traceID, spanID, parentID, service, typ string) *sentry.Event {
	ev := *tpl
	ev.EventID = sentry.EventID(fmt.Sprintf("%032x", rand.Uint64()))
	ev.Timestamp = time.Now()
	ev.Tags = map[string]string{
		sentryotel.TagTraceID: traceID, sentryotel.TagSpanID: spanID, sentryotel.TagServiceName: service,
	}
	tc := sentry.Context{"trace_id": traceID, "span_id": spanID}
	if parentID != "" {
		tc["parent_span_id"] = parentID
	}
	ev.Contexts = map[string]sentry.Context{"trace": tc}
	for k, v := range tpl.Contexts {
		if k != "trace" {
			ev.Contexts[k] = maps.Clone(v)
		}
	}
	ev.Modules = maps.Clone(tpl.Modules)

	ev.Exception = slices.Clone(tpl.Exception)
	for i := range ev.Exception {
		if ev.Exception[i].Stacktrace == nil {
			continue
		}
		st := *ev.Exception[i].Stacktrace
		st.Frames = slices.Clone(st.Frames)
		ev.Exception[i].Stacktrace = &st
	}
	ev.Exception[len(ev.Exception)-1].Type = typ
	return &ev
}

// eventSize measures the heap one clone holds.
func eventSize(tpl *sentry.Event) uint64 {
	const n = 2000
	keep := make([]*sentry.Event, n)
	before := heapAlloc()
	for i := range keep {
		keep[i] = clone(tpl, fmt.Sprintf("%032x", i+1), "00000000000000c3", "00000000000000b2", "payment", "*main.PaymentDeclined")
	}
	after := heapAlloc()
	runtime.KeepAlive(keep)
	return (after - before) / n
}

func heapAlloc() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// counter is the inner transport: it counts, and times, what it is sent.
type counter struct {
	n    atomic.Int64
	mu   sync.Mutex
	seen map[string]time.Time // event id -> when it was handed over
}

func (c *counter) Flush(time.Duration) bool              { return true }
func (c *counter) FlushWithContext(context.Context) bool { return true }
func (c *counter) Configure(sentry.ClientOptions)        {}
func (c *counter) Close()                                {}
func (c *counter) SendEvent(e *sentry.Event) {
	c.n.Add(1)
	if c.seen != nil {
		c.mu.Lock()
		c.seen[string(e.EventID)] = time.Now()
		c.mu.Unlock()
	}
}

// peak samples the heap until stop is closed and returns the most it saw.
func peak(stop <-chan struct{}) <-chan uint64 {
	out := make(chan uint64, 1)
	go func() {
		var most uint64
		var m runtime.MemStats
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&m)
			most = max(most, m.HeapAlloc)
			select {
			case <-stop:
				out <- most
				return
			case <-tick.C:
			}
		}
	}()
	return out
}

var cascadeSpans = [3][3]string{ // span, parent, service: payment, order, gateway
	{"00000000000000c3", "00000000000000b2", "payment"},
	{"00000000000000b2", "00000000000000a1", "order"},
	{"00000000000000a1", "", "gateway"},
}

// storm sends n events, event i of trace and position at(i), from GOMAXPROCS
// goroutines, and reports the peak heap and the Transport's counts.
var senders = runtime.GOMAXPROCS(0)

func storm(name string, tpl *sentry.Event, n int, at func(i int) (trace, pos int)) {
	base := heapAlloc()
	inner := &counter{}
	tr := dedup.NewTransport(inner)
	stop := make(chan struct{})
	most := peak(stop)
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range senders {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				t, pos := at(i)
				id := fmt.Sprintf("%032x", t+1)
				var ev *sentry.Event
				if pos < 3 {
					c := cascadeSpans[pos]
					ev = clone(tpl, id, c[0], c[1], c[2], "*main.E"+c[2])
				} else { // a retry: the payment call again, on a span of its own
					ev = clone(tpl, id, fmt.Sprintf("%016x", pos+1), "00000000000000b2", "payment", "*main.Epayment")
				}
				tr.SendEvent(ev)
			}
		})
	}
	wg.Wait()
	sent := time.Since(start)
	flushed := tr.Flush(time.Minute)
	tr.Close()
	close(stop)
	s := tr.Stats()
	fmt.Printf("%s: %d events sent in %s (%.0f ns/event), flush %v\n", name, n, sent.Round(time.Millisecond), float64(sent.Nanoseconds())/float64(n), flushed)
	p := <-most
	fmt.Printf("  peak heap: %.1f MB (%.1f MB above the %.1f MB before)\n", float64(p)/1e6, float64(p-min(base, p))/1e6, float64(base)/1e6)
	fmt.Printf("  reports %d; suppressed %d; overflow (passed undecided) %d; decided early %d; late %d (suppressed %d); dropped %d (queue full %d)\n",
		inner.n.Load(), s.Suppressed, s.Overflow, s.DecidedEarly, s.Late, s.LateSuppressed, s.Dropped, s.QueueFull)
	fmt.Printf("  invariant: received %d == emitted %d + suppressed %d + pending %d + dropped %d\n\n",
		s.Received, s.Emitted, s.Suppressed, s.Pending, s.Dropped)
	if s.Received != s.Emitted+s.Suppressed+s.Pending+s.Dropped || !flushed || s.Pending != 0 {
		fmt.Fprintln(os.Stderr, "storm: the counters do not add up, or the flush did not finish")
		os.Exit(1)
	}
}

// requests serves n requests of random latency (1–50 ms), 200 at a time;
// each captures the three errors of a cascade while it runs, then ends. It
// reports the delay from a request's end to its report.
func requests(tpl *sentry.Event, n int) {
	inner := &counter{seen: make(map[string]time.Time)}
	tr := dedup.NewTransport(inner)
	var mu sync.Mutex
	ended := make(map[string]time.Time) // root event id -> when its request ended
	var reqLatency []time.Duration
	sem := make(chan struct{}, 200)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			var tid trace.TraceID
			var sid trace.SpanID
			copy(tid[:], fmt.Sprintf("%016x", i+1))
			copy(sid[:], "gateway!")
			ctx := trace.ContextWithSpanContext(context.Background(),
				trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
			begin := time.Now()
			in := tr.Incoming(ctx)
			latency := time.Duration(1+rand.IntN(50)) * time.Millisecond
			var root string
			for pos := range 3 {
				time.Sleep(latency / 3)
				c := cascadeSpans[pos]
				ev := clone(tpl, tid.String(), c[0], c[1], c[2], "*main.E"+c[2])
				if pos == 0 {
					root = string(ev.EventID)
				}
				tr.SendEvent(ev)
			}
			in.End()
			end := time.Now()
			mu.Lock()
			ended[root] = end
			reqLatency = append(reqLatency, end.Sub(begin))
			mu.Unlock()
		})
	}
	wg.Wait()
	time.Sleep(dedup.DefaultRequestGrace + 100*time.Millisecond)
	tr.Close()
	var delays []time.Duration
	inner.mu.Lock()
	for id, end := range ended {
		if at, ok := inner.seen[id]; ok {
			delays = append(delays, at.Sub(end))
		}
	}
	inner.mu.Unlock()
	slices.Sort(delays)
	slices.Sort(reqLatency)
	pct := func(d []time.Duration, p float64) time.Duration { return d[int(p*float64(len(d)-1))] }
	s := tr.Stats()
	fmt.Printf("%d requests (latency 1–50 ms, p99 %s), 3 errors each: reports %d of %d requests, suppressed %d, request-ended %d\n",
		n, pct(reqLatency, 0.99).Round(time.Millisecond), inner.n.Load(), n, s.Suppressed, s.RequestEnded)
	fmt.Printf("  report after the request's end: p50 %s, p99 %s, max %s\n",
		pct(delays, 0.5).Round(100*time.Microsecond), pct(delays, 0.99).Round(100*time.Microsecond), delays[len(delays)-1].Round(100*time.Microsecond))
}
