package dedup_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/internal/sentrytest"
	"github.com/tracedup/tracedup/rootcause"
)

// stressFor is how long each stress round runs: TRACEDUP_STRESS (a
// duration) or a short default that keeps the test command quick.
func stressFor(t *testing.T) time.Duration {
	if v := os.Getenv("TRACEDUP_STRESS"); v != "" {
		d, err := time.ParseDuration(v)
		require.NoError(t, err)
		return d
	}
	return 300 * time.Millisecond
}

// stressEvent returns an event of one of a few traces, of a random kind:
// errors of the cascade's shapes and of odd ones (no span, a bad trace id,
// contexts of the wrong types), messages, transactions.
func stressEvent(r *rand.Rand, traces []string) *sentry.Event {
	id := traces[r.IntN(len(traces))]
	span := fmt.Sprintf("%016x", 0xc0+r.IntN(8))
	parent := fmt.Sprintf("%016x", 0xc0+r.IntN(8))
	ev := errEvent(id, span, parent, fmt.Sprintf("svc%d", r.IntN(4)), fmt.Sprintf("*main.E%d", r.IntN(4)))
	ev.EventID = sentry.EventID(fmt.Sprintf("%032x", r.Uint64()))
	switch r.IntN(12) {
	case 0:
		ev.Exception, ev.Level = nil, sentry.LevelInfo // a message
	case 1:
		ev.Type = "transaction"
	case 2:
		ev.Tags["otel.trace_id"] = "not hex"
	case 3:
		delete(ev.Tags, "otel.span_id")
		ev.Contexts["trace"]["span_id"] = 42
	case 4:
		ev.Contexts["tracedup"] = sentry.Context{"ancestors": ",,x," + parent, "last_child": 7}
	case 5:
		ev.Tags[dedup.TagSuppressed] = "3"
	case 6:
		ev.Exception = append(ev.Exception, sentry.Exception{})
	}
	return ev
}

// Many goroutines send events, serve and end calls (Begin, BeginContext
// and Bind, End), record outgoing calls, flush and read the counters while
// the windows open and close; then Close comes in the middle of it. The
// invariant holds at every read, and once everything returned nothing is
// pending and no byte is left counted anywhere.
func TestStressEverythingAtOnce(t *testing.T) {
	for round := range 3 {
		t.Run(fmt.Sprint(round), func(t *testing.T) { stressRound(t, round) })
	}
}

func stressRound(t *testing.T, round int) {
	defer setOtelHandler(func(error) {})() // the panicking strategy's reports
	strategies := []rootcause.Strategy{
		rootcause.Default(),
		rootcause.StrategyFunc(func(errs []rootcause.Error) int { return len(errs) - 1 }),
		rootcause.StrategyFunc(func(errs []rootcause.Error) int {
			if len(errs)%3 == 0 {
				panic("strategy")
			}
			return 0
		}),
	}
	inner := sentrytest.NewTransport()
	tr := dedup.NewTransport(inner,
		dedup.WithStrategy(strategies[round%len(strategies)]),
		dedup.WithWindow(2*time.Millisecond), dedup.WithRequestGrace(time.Millisecond),
		dedup.WithMaxQueueSize(64), dedup.WithMaxEventsPerTrace(8), dedup.WithMaxHeldEvents(128),
		dedup.WithMaxTraces(64), dedup.WithMaxBytes(1<<20), dedup.WithMemory(10*time.Millisecond, 64),
		dedup.WithCloseTimeout(10*time.Second))
	traces := make([]string, 16)
	for i := range traces {
		traces[i] = fmt.Sprintf("%032x", rand.Uint64()|1)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var iterations atomic.Int64
	for g := range 16 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(round), uint64(g)))
			var in dedup.Incoming
			for {
				select {
				case <-stop:
					in.End()
					return
				default:
				}
				iterations.Add(1)
				id := traces[r.IntN(len(traces))]
				span := fmt.Sprintf("%016x", 0xc0+r.IntN(8))
				switch r.IntN(10) {
				case 0:
					in.End()
					in.Begin(spanCtx(t, id, span), tr)
				case 1:
					in.End()
					ctx, _ := in.BeginContext(context.Background(), tr)
					in.Bind(ctx) // no span: nothing
					go in.Bind(spanCtx(t, id, span))
					in.Bind(spanCtx(t, id, span))
				case 2:
					tr.Outgoing(spanCtx(t, id, span), "GET /pay", fmt.Sprintf("%032x", r.Uint64()))
				case 3:
					tr.Outgoing(spanCtx(t, id, span), "GET /pay", "")
				case 4:
					_ = in.Reported()
				default:
					tr.SendEvent(stressEvent(r, traces))
				}
			}
		})
	}
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
			tr.FlushWithContext(ctx)
			cancel()
			tr.TraceComplete([16]byte{1})
		}
	})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			s := tr.Stats()
			if s.Received != s.Emitted+s.Suppressed+s.Pending+s.Dropped {
				t.Errorf("invariant broken: %+v", s)
				return
			}
		}
	})
	time.Sleep(stressFor(t))
	closed := make(chan struct{})
	go func() { tr.Close(); close(closed) }()
	time.Sleep(stressFor(t) / 10) // senders keep on during Close
	close(stop)
	wg.Wait()
	<-closed
	tr.Close()

	s := tr.Stats()
	t.Logf("%d iterations: %+v", iterations.Load(), s)
	assertInvariant(t, s)
	assert.Zero(t, s.Pending, "nothing pending once Close and every SendEvent returned")
	assert.Zero(t, s.HeldBytes, "held bytes")
	assert.Zero(t, dedup.OpenBytes(tr), "open bytes")
	n, b := dedup.LateQueued(tr)
	assert.Zero(t, n, "late events")
	assert.Zero(t, b, "late bytes")
	assert.NotZero(t, s.Emitted)
}
