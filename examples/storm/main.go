// Command storm drives a dedup.Transport through error storms made of
// real-size events, and prints what it held at most, what it sent, what it
// passed undecided or dropped and how late the reports were:
//
//   - 1M events over 1M traces (one error each, a flood of unrelated failures);
//   - 100k events in one trace (a retry loop failing);
//   - 30k traces × 3 events (30k failing requests, each a three-service cascade);
//   - the same 90k events from four senders, whatever -senders says;
//   - requests served through Incoming/End, to time the report after the
//     request's end.
//
// Events are copies of one that a real sentry-go client captured: four
// wrapped errors with their stack frames, about 13 KB of JSON each. With
// -event-size they are grown as real big events are big (see grow), up to
// Sentry's limit of 1 MiB.
//
// With -inner ok (the default) it exits 1 when a storm dropped an event,
// passed one undecided, did not finish its flush or broke the invariant of
// dedup.Stats. With -inner stuck (a black-holed Sentry) or slow, what
// matters is the peak heap, and only a broken invariant fails.
//
// Every storm ends with a "measure:" line of key=value pairs, for programs.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/getsentry/sentry-go"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracedup/tracedup/dedup"
)

func main() { os.Exit(run()) }

// config is what the flags say.
type config struct {
	inner        string
	senders      int
	budget       int64 // 0: dedup's default, not passed
	flushTimeout time.Duration
	jsonBytes    int
}

// options returns the Transport's options for c: the budget if one was
// given, and with a stuck inner transport a Close as bounded as the flush.
func (c config) options() []dedup.Option {
	var o []dedup.Option
	if c.budget > 0 {
		o = append(o, dedup.WithMaxBytes(c.budget))
	}
	if c.inner == innerStuck {
		o = append(o, dedup.WithCloseTimeout(c.flushTimeout))
	}
	return o
}

func (c config) budgetBytes() int64 {
	if c.budget > 0 {
		return c.budget
	}
	return dedup.DefaultMaxBytes
}

func run() int {
	scale := flag.Float64("scale", 1, "multiply every storm's size by this")
	only := flag.String("only", "", "run only the storms whose name contains this (\"requests\" for the requests)")
	size := flag.String("event-size", "", "grow each event to about this size of JSON: 200KB, 1MB, 512KiB or bytes; at most 1MiB, Sentry's limit (default: the real capture as it is, about 13 KB)")
	inner := flag.String("inner", innerOK, "the inner transport: ok; stuck (SendEvent blocks until Close: a black-holed Sentry); slow (5 ms per SendEvent)")
	senders := flag.Int("senders", runtime.GOMAXPROCS(0), "goroutines sending each storm's events (the 4-sender storm always has 4)")
	budget := flag.String("budget", "", "pass dedup.WithMaxBytes with this size (200MiB, 64MB or bytes); default: dedup.DefaultMaxBytes")
	runs := flag.Int("runs", 1, "run the selected storms this many times, each with a fresh Transport, and sum each storm up")
	flushTimeout := flag.Duration("flush-timeout", 0, "bound each storm's Flush by this (default 1m, and 1s with -inner stuck, which also bounds Close by it)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return usage(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return usage(err)
		}
		defer func() {
			pprof.StopCPUProfile()
			_ = f.Close()
		}()
	}
	cfg := config{inner: *inner, senders: max(1, *senders), flushTimeout: *flushTimeout}
	if _, err := newCounter(cfg.inner, false); err != nil {
		return usage(err)
	}
	if cfg.flushTimeout <= 0 {
		cfg.flushTimeout = time.Minute
		if cfg.inner == innerStuck {
			cfg.flushTimeout = time.Second
		}
	}
	if *budget != "" {
		b, err := parseBytes(*budget)
		if err != nil || b <= 0 {
			return usage(fmt.Errorf("-budget %q: want a size above 0", *budget))
		}
		cfg.budget = b
	}

	tpl := captured()
	real := jsonSize(tpl)
	if *size != "" {
		want, err := parseBytes(*size)
		if err != nil {
			return usage(err)
		}
		if want > sentryMaxEvent {
			return usage(fmt.Errorf("-event-size %s: Sentry takes events of at most 1 MiB (1MB is just under it)", *size))
		}
		tpl = grow(tpl, int(want))
		ownStrings = true
	}
	cfg.jsonBytes = jsonSize(tpl)
	perClone := eventSize(tpl, cfg.jsonBytes)
	fmt.Printf("event size: %d bytes of JSON, %d bytes of heap per clone (%.1f× the JSON); the real capture is %d bytes of JSON, %d exceptions\n",
		cfg.jsonBytes, perClone, float64(perClone)/float64(cfg.jsonBytes), real, len(tpl.Exception))
	fmt.Printf("  shape: %d frames (%d with source context), %d breadcrumbs, request body %d bytes\n", countFrames(tpl, false), countFrames(tpl, true), len(tpl.Breadcrumbs), requestBody(tpl))
	how := "dedup.DefaultMaxBytes"
	if cfg.budget > 0 {
		how = "-budget, WithMaxBytes"
	}
	fmt.Printf("budget: %s (%s); %d held events (×2 when due), queues of %d\n", mib(cfg.budgetBytes()), how, dedup.DefaultMaxHeldEvents, dedup.DefaultMaxQueueSize)
	fmt.Printf("inner transport: %s; flush bounded at %s; %d senders; GOMAXPROCS %d\n\n", describeInner(cfg), cfg.flushTimeout, cfg.senders, runtime.GOMAXPROCS(0))

	n := func(v int) int { return max(1, int(float64(v)**scale)) }
	selected := func(name string) bool { return strings.Contains(name, *only) }
	storms := []stormSpec{
		{"1M events over 1M traces", n(1_000_000), cfg.senders, func(i int) (int, int) { return i, 0 }},
		{"100k events in one trace", n(100_000), cfg.senders, func(i int) (int, int) { return 0, i }},
		{"30k traces × 3 events", 3 * n(30_000), cfg.senders, func(i int) (int, int) { return i / 3, i % 3 }},
		{"30k traces × 3 events, 4 senders", 3 * n(30_000), 4, func(i int) (int, int) { return i / 3, i % 3 }},
	}
	storms = slices.DeleteFunc(storms, func(s stormSpec) bool { return !selected(s.name) })

	results := make([][]result, len(storms))
	clean := true
	for r := range max(1, *runs) {
		if *runs > 1 {
			fmt.Printf("== run %d of %d\n\n", r+1, *runs)
		}
		for i, s := range storms {
			res := storm(cfg, s, tpl, r+1)
			results[i] = append(results[i], res)
			clean = clean && res.clean
		}
		if selected("requests") {
			clean = requests(cfg, tpl, n(3000)) && clean
		}
	}
	if *runs > 1 {
		for i, s := range storms {
			summarize(cfg, s.name, results[i])
		}
	}
	if !clean {
		return 1
	}
	return 0
}

func usage(err error) int {
	fmt.Fprintln(os.Stderr, "storm:", err)
	flag.Usage()
	return 2
}

func describeInner(c config) string {
	switch c.inner {
	case innerStuck:
		return "stuck (SendEvent blocks until Close; Close bounded at " + c.flushTimeout.String() + ")"
	case innerSlow:
		return fmt.Sprintf("slow (%s per SendEvent)", slowSend)
	}
	return "ok (takes every event at once)"
}

func countFrames(ev *sentry.Event, withContext bool) int {
	n := 0
	for _, e := range ev.Exception {
		if e.Stacktrace == nil {
			continue
		}
		for _, f := range e.Stacktrace.Frames {
			if !withContext || f.ContextLine != "" {
				n++
			}
		}
	}
	return n
}

func requestBody(ev *sentry.Event) int {
	if ev.Request == nil {
		return 0
	}
	return len(ev.Request.Data)
}

func mb(b uint64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func heapAlloc() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// peaks are the most the heap held while a storm ran: HeapAlloc, which
// counts garbage not yet collected too, and the live heap that the last
// garbage collection marked.
type peaks struct{ heap, live uint64 }

// peak samples the heap until stop is closed and returns the most it saw.
func peak(stop <-chan struct{}) <-chan peaks {
	out := make(chan peaks, 1)
	go func() {
		var most peaks
		var m runtime.MemStats
		live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&m)
			metrics.Read(live)
			most.heap = max(most.heap, m.HeapAlloc)
			if live[0].Value.Kind() == metrics.KindUint64 {
				most.live = max(most.live, live[0].Value.Uint64())
			}
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

// stormSpec is a storm of n events: event i is of trace and position at(i),
// sent from senders goroutines.
type stormSpec struct {
	name    string
	n       int
	senders int
	at      func(i int) (trace, pos int)
}

// result is what one run of a storm showed.
type result struct {
	clean               bool
	undecided, dropped  uint64
	peakAbove, liveSent uint64 // peak HeapAlloc and live heap after sending, above the baseline
}

// storm runs s against a fresh Transport and reports the peak heap and the
// Transport's counts. A run is clean when the invariant of dedup.Stats holds
// and, with -inner ok, the flush finished and nothing was dropped or passed
// undecided.
func storm(cfg config, s stormSpec, tpl *sentry.Event, runNo int) result {
	base := heapAlloc()
	inner, _ := newCounter(cfg.inner, false)
	tr := dedup.NewTransport(inner, cfg.options()...)
	stop := make(chan struct{})
	most := peak(stop)
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range s.senders {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < s.n; i = int(next.Add(1) - 1) {
				t, pos := s.at(i)
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
	liveSent := heapAlloc() // after a GC: what the Transport holds once the senders are done
	flushStart := time.Now()
	flushed := tr.Flush(cfg.flushTimeout)
	flushTook := time.Since(flushStart)
	atFlush := tr.Stats()
	tr.Close()
	close(stop)
	st := tr.Stats()
	p := <-most
	above := func(v uint64) uint64 { return v - min(base, v) }
	budget := cfg.budgetBytes()

	fmt.Printf("%s: %d events sent in %s (%.0f ns/event) by %d senders, flush %v in %s (pending %d then)\n",
		s.name, s.n, sent.Round(time.Millisecond), float64(sent.Nanoseconds())/float64(s.n), s.senders,
		flushed, flushTook.Round(time.Millisecond), atFlush.Pending)
	fmt.Printf("  peak heap: %s (%s above the %s before); live heap after sending (after GC): %s above; peak live (GC-marked): %s above\n",
		mb(p.heap), mb(above(p.heap)), mb(base), mb(above(liveSent)), mb(above(p.live)))
	fmt.Printf("  budget %s: peak above baseline / budget = %.2f; live after sending / budget = %.2f\n",
		mib(budget), float64(above(p.heap))/float64(budget), float64(above(liveSent))/float64(budget))
	fmt.Printf("  reports %d; suppressed %d; undecided (overflow) %d; decided early %d; late %d (suppressed %d); dropped %d (queue full %d, abandoned %d, inner panics %d, after close %d)\n",
		inner.n.Load(), st.Suppressed, st.Overflow, st.DecidedEarly, st.Late, st.LateSuppressed,
		st.Dropped, st.QueueFull, st.Abandoned, st.InnerPanics, st.AfterClose)
	fmt.Printf("  invariant: received %d == emitted %d + suppressed %d + pending %d + dropped %d\n",
		st.Received, st.Emitted, st.Suppressed, st.Pending, st.Dropped)

	adds := st.Received == st.Emitted+st.Suppressed+st.Pending+st.Dropped
	var why []string
	if !adds {
		why = append(why, "the counters do not add up")
	}
	if cfg.inner == innerOK {
		if !flushed || st.Pending != 0 {
			why = append(why, "the flush did not finish")
		}
		if st.Dropped != 0 {
			why = append(why, fmt.Sprintf("%d events dropped", st.Dropped))
		}
		if st.Overflow != 0 {
			why = append(why, fmt.Sprintf("%d events passed undecided", st.Overflow))
		}
	}
	res := result{clean: len(why) == 0, undecided: st.Overflow, dropped: st.Dropped, peakAbove: above(p.heap), liveSent: above(liveSent)}
	fmt.Printf("  measure: storm=%q run=%d inner=%s senders=%d events=%d event_json_bytes=%d budget_bytes=%d base_heap_bytes=%d peak_heap_above_base_bytes=%d peak_live_above_base_bytes=%d live_after_send_above_base_bytes=%d received=%d undecided=%d dropped=%d flushed=%v invariant=%v clean=%v\n\n",
		s.name, runNo, cfg.inner, s.senders, s.n, cfg.jsonBytes, budget, base, above(p.heap), above(p.live), above(liveSent),
		st.Received, st.Overflow, st.Dropped, flushed, adds, res.clean)
	if !res.clean {
		fmt.Fprintf(os.Stderr, "storm: %s (run %d): %s\n", s.name, runNo, strings.Join(why, "; "))
	}
	return res
}

// summarize prints one line for the runs of a storm.
func summarize(cfg config, name string, runs []result) {
	var clean int
	var undecided, dropped []string
	var most result
	for _, r := range runs {
		if r.clean {
			clean++
		}
		undecided = append(undecided, fmt.Sprint(r.undecided))
		dropped = append(dropped, fmt.Sprint(r.dropped))
		most.undecided = max(most.undecided, r.undecided)
		most.dropped = max(most.dropped, r.dropped)
		most.peakAbove = max(most.peakAbove, r.peakAbove)
	}
	fmt.Printf("summary: %s: %d runs, %d clean; undecided max %d (%s); dropped max %d (%s); peak heap above baseline max %s (%.2f× the budget of %s)\n",
		name, len(runs), clean, most.undecided, strings.Join(undecided, " "), most.dropped, strings.Join(dropped, " "),
		mb(most.peakAbove), float64(most.peakAbove)/float64(cfg.budgetBytes()), mib(cfg.budgetBytes()))
}

// requests serves n requests of random latency (1–50 ms), 200 at a time;
// each captures the three errors of a cascade while it runs, then ends. It
// reports the delay from a request's end to its report, and whether the
// invariant of dedup.Stats held.
func requests(cfg config, tpl *sentry.Event, n int) bool {
	inner, _ := newCounter(cfg.inner, true)
	tr := dedup.NewTransport(inner, cfg.options()...)
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
	if len(delays) == 0 {
		fmt.Printf("  no report reached the inner transport\n")
	} else {
		fmt.Printf("  report after the request's end: p50 %s, p99 %s, max %s\n",
			pct(delays, 0.5).Round(100*time.Microsecond), pct(delays, 0.99).Round(100*time.Microsecond), delays[len(delays)-1].Round(100*time.Microsecond))
	}
	adds := s.Received == s.Emitted+s.Suppressed+s.Pending+s.Dropped
	fmt.Printf("  invariant: received %d == emitted %d + suppressed %d + pending %d + dropped %d\n\n",
		s.Received, s.Emitted, s.Suppressed, s.Pending, s.Dropped)
	if !adds {
		fmt.Fprintln(os.Stderr, "storm: requests: the counters do not add up")
	}
	return adds
}
