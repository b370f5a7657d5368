package workload

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"
)

// plain wires plain sentry-go clients; window is the virtual window it
// claims, and the wrappers count that they were used.
type plain struct {
	window                time.Duration
	served, called, spans *atomic.Int64
}

func (w plain) Stack(_ string, opts sentry.ClientOptions) Stack {
	st := Stack{Options: opts, Window: w.window}
	if w.served != nil {
		st.Server = func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
				w.served.Add(1)
				if trace.SpanContextFromContext(r.Context()).IsValid() {
					w.spans.Add(1)
				}
				next.ServeHTTP(rw, r)
			})
		}
		st.Client = func(next http.RoundTripper) http.RoundTripper {
			return roundTripFunc(func(r *http.Request) (*http.Response, error) {
				w.called.Add(1)
				return next.RoundTrip(r)
			})
		}
	}
	return st
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func load(t *testing.T) *Plan {
	t.Helper()
	cfg := quiet(60)
	cfg.Propagate, cfg.Retry, cfg.Info, cfg.NoTrace, cfg.Late, cfg.LateSymptom, cfg.Siblings = 0.7, 0.5, 0.3, 0.2, 0.3, 0.2, 0.2
	p, err := Generate(Chain(3), cfg)
	require.NoError(t, err)
	return p
}

// TestRunSendsEveryEvent: without deduplication every planned event reaches
// the final transport once, with its ground truth, its virtual timestamp and
// its exception named; every handler ran inside a span.
func TestRunSendsEveryEvent(t *testing.T) {
	p := load(t)
	var served, called, spans atomic.Int64
	o, err := Run(context.Background(), p, plain{served: &served, called: &called, spans: &spans}, RunOptions{Workers: 4, Batch: 7})
	require.NoError(t, err)
	assert.Equal(t, len(p.Events), o.Captured)
	require.Len(t, o.Sent, len(p.Events))
	seen := map[int]bool{}
	for _, s := range o.Sent {
		require.NotNil(t, s.Truth)
		assert.False(t, seen[s.Truth.ID], "event %d sent twice", s.Truth.ID)
		seen[s.Truth.ID] = true
		assert.Equal(t, s.Truth.Service, s.Service)
		assert.Equal(t, s.Truth.Late, s.Late, "event %d", s.Truth.ID)
		assert.Equal(t, s.Truth.At, s.At, "no window: sent at once")
		assert.True(t, s.Event.Timestamp.Equal(Epoch.Add(s.Truth.At+s.Truth.Skew)))
		if s.Truth.Role == Info {
			assert.Equal(t, sentry.LevelInfo, s.Event.Level)
			assert.Empty(t, s.Event.Exception)
			continue
		}
		require.NotEmpty(t, s.Event.Exception)
		assert.Equal(t, s.Truth.Type, s.Event.Exception[len(s.Event.Exception)-1].Type)
		assert.True(t, strings.HasPrefix(Issue(s.Event), s.Service+" *"+s.Service+"."))
	}
	nodes := 0
	for _, r := range p.Requests {
		var count func(n *Node)
		count = func(n *Node) {
			nodes++
			for _, st := range n.Steps {
				if st.Call != nil {
					count(st.Call)
				}
			}
		}
		count(r.Root)
	}
	assert.Equal(t, int64(nodes), served.Load(), "Stack.Server saw every call")
	assert.Equal(t, served.Load(), spans.Load(), "inside otelhttp's span")
	assert.Equal(t, int64(nodes-len(p.Requests)), called.Load(), "Stack.Client made every call between services")
}

// TestRunWindow: a windowed transport's reports are dated at the end of the
// window its service opened for the request; late events after the trace
// was decided are dated when they come.
func TestRunWindow(t *testing.T) {
	p := load(t)
	const w = 5 * time.Second
	o, err := Run(context.Background(), p, plain{window: w}, RunOptions{})
	require.NoError(t, err)
	first := map[[2]any]time.Duration{}
	for _, ev := range p.Events {
		k := [2]any{ev.Service, ev.Request}
		if f, ok := first[k]; ev.Traced && !ev.Late && ev.Role != Info && (!ok || ev.At < f) {
			first[k] = ev.At
		}
	}
	late := 0
	for _, s := range o.Sent {
		ev := s.Truth
		switch _, decided := first[[2]any{ev.Service, ev.Request}]; {
		case !ev.Traced || ev.Role == Info:
			assert.Equal(t, ev.At, s.At)
		case ev.Late && decided:
			late++
			assert.Equal(t, ev.At, s.At)
		case ev.Late:
			late++
			assert.GreaterOrEqual(t, s.At, ev.At, "a window of late events")
		default:
			assert.Equal(t, first[[2]any{ev.Service, ev.Request}]+w, s.At)
		}
	}
	assert.Positive(t, late)
}

func TestRunCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Run(ctx, load(t), plain{}, RunOptions{})
	assert.ErrorIs(t, err, context.Canceled)
}
