package relay_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/internal/fakesentry"
	"github.com/tracedup/tracedup/internal/scenario"
	"github.com/tracedup/tracedup/relay"
)

// relayWiring is the scenarios' wiring through a relay: the services run no
// deduplicator; each sends its errors to the relay by its DSN (sentryotel's
// hook stamps them with the trace context, as any SDK's tracing does; with
// no span processor they carry no ancestors nor last child, so the relay
// learns every link from the spans) and exports its spans to the relay's
// OTLP endpoint as they end. The relay
// forwards to a fake Sentry. A service without tracedup is the same: it
// sends to the relay too, which is the point.
type relayWiring struct {
	upstream *fakesentry.Server
	srv      *relay.Server
	url      string
	// captured counts the events the services' clients send; delivered
	// the envelopes the relay has answered. sentry-go's Client.Flush can
	// return while its scheduler holds an event it took from its buffer
	// and has not yet handed to the transport, so Sent waits for the
	// relay to have answered as many envelopes as were captured.
	captured  atomic.Int64
	mu        sync.Mutex
	delivered int64
	arrived   chan struct{} // closed and replaced on each delivery
}

// newRelayWiring starts a fake Sentry and a relay in front of it, with
// options for its deduplicator. The relay's window and grace are an hour:
// it decides when the test flushes it, once every service's events and
// spans have arrived.
func newRelayWiring(t testing.TB, options ...dedup.Option) scenario.Wiring {
	upstream, err := fakesentry.New()
	require.NoError(t, err)
	t.Cleanup(func() { _ = upstream.Close() })
	u, err := url.Parse(upstream.URL())
	require.NoError(t, err)
	srv := relay.NewServer(u, relay.Config{Window: time.Hour, Grace: time.Hour, Options: options})
	w := &relayWiring{upstream: upstream, srv: srv, arrived: make(chan struct{})}
	rs := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		srv.ServeHTTP(rw, r)
		if strings.HasSuffix(r.URL.Path, "/envelope/") {
			w.mu.Lock()
			w.delivered++
			close(w.arrived)
			w.arrived = make(chan struct{})
			w.mu.Unlock()
		}
	}))
	w.url = rs.URL
	// Cleanups run last first: the services, started later, stop (and
	// flush to the relay) before it does.
	t.Cleanup(func() {
		rs.Close()
		_ = srv.Shutdown(context.Background())
	})
	return w
}

// waitDelivered waits until the relay has answered as many envelopes as
// the services captured events.
func (w *relayWiring) waitDelivered(ctx context.Context) error {
	for {
		w.mu.Lock()
		done, arrived := w.delivered >= w.captured.Load(), w.arrived
		w.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-arrived:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (*relayWiring) Name() string { return "relay" }

func (w *relayWiring) Service(t testing.TB, s *scenario.Service, cfg scenario.ServiceConfig) scenario.Wired {
	require.Zero(t, cfg.DSN, "%s: the relay's services send to the relay", s.Name)
	require.Nil(t, cfg.Sentry, "%s: the relay's services send to the relay", s.Name)
	require.Empty(t, cfg.Dedup, "%s: the relay's services run no deduplicator: the scenario's options are the relay's", s.Name)
	require.False(t, cfg.SpanInside, "%s: nothing in the relay's services wraps otelhttp", s.Name)
	exp, err := otlptracehttp.New(context.Background(),
		otlptracehttp.WithEndpointURL(w.url+"/api/"+fakesentry.DefaultProject+"/integration/otlp/v1/traces"),
		otlptracehttp.WithHeaders(map[string]string{"X-Sentry-Auth": "Sentry sentry_key=" + fakesentry.DefaultPublicKey + ", sentry_version=7"}))
	require.NoError(t, err)
	u, err := url.Parse(w.url)
	require.NoError(t, err)
	return scenario.Wired{
		TracerProvider: []sdktrace.TracerProviderOption{sdktrace.WithSyncer(exp)},
		Client: sentry.ClientOptions{
			Dsn:        fmt.Sprintf("http://%s@%s/%s", fakesentry.DefaultPublicKey, u.Host, fakesentry.DefaultProject),
			ServerName: s.Name,
			BeforeSend: func(ev *sentry.Event, _ *sentry.EventHint) *sentry.Event {
				w.captured.Add(1)
				return ev
			},
		},
	}
}

func (w *relayWiring) Sent(t testing.TB, _ []*scenario.Service) (got []string, captured int) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, w.waitDelivered(ctx), "relay: %d events captured: %+v", w.captured.Load(), w.srv.Stats())
	require.True(t, w.srv.Flush(ctx), "relay: flush: %+v", w.srv.Stats())
	evs := w.upstream.Events()
	st := w.srv.Stats()
	// Server.Flush's contract: what the relay sent is upstream.
	assert.Equal(t, int(st.Relay.Dedup.Emitted), len(evs), "relay: emitted, and upstream after a flush: %+v; upstream: %+v", st, w.upstream.Stats())
	for _, ev := range evs {
		got = append(got, scenario.Describe(ev.Event.ServerName, ev.Event))
	}
	d := st.Relay.Dedup
	assert.Equal(t, d.Received, d.Emitted+d.Suppressed+d.Pending+d.Dropped, "relay: %+v", d)
	assert.Zero(t, d.Pending+d.Dropped, "relay: %+v", d)
	assert.Zero(t, st.Relay.Dropped+st.Relay.Unforwardable, "relay: %+v", st.Relay)
	return got, int(d.Received)
}

// TestScenarios runs the scenarios of the incident model (package
// scenario) through the relay: no service runs a deduplicator. It logs the
// table of recall and precision (go test -run TestScenarios -v), beside
// deduphttp's through the acknowledgement.
func TestScenarios(t *testing.T) {
	scenario.Run(t, newRelayWiring)
}
