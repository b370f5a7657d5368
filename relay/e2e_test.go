package relay_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/internal/fakesentry"
	"github.com/tracedup/tracedup/relay"
	"github.com/tracedup/tracedup/sentryotel"
)

// shop is three services that run no deduplicator: each stamps its errors
// with sentryotel's hook, sends them to the relay by its DSN, and exports
// its OTel spans to the relay's OTLP endpoint, as sentry-go recommends.
type shop struct {
	urls    map[string]string // each service's URL, by name
	clients []*sentry.Client
	tps     []*sdktrace.TracerProvider
}

// shopOptions vary a shop.
type shopOptions struct {
	// external are services run outside the shop (another language), by
	// name: the shop's callers call them at these URLs, and start no Go
	// service of that name.
	external map[string]string
	// propagator is what the Go services inject into their calls and
	// extract from their requests (W3C trace context by default).
	propagator propagation.TextMapPropagator
	// recorder, when set, records every span the Go services end.
	recorder sdktrace.SpanProcessor
}

var w3c = propagation.TraceContext{}

func startShop(t *testing.T, relayURL string, opts shopOptions) *shop {
	t.Helper()
	if opts.propagator == nil {
		opts.propagator = w3c
	}
	s := &shop{urls: map[string]string{}}
	dsn := relayDSN(t, relayURL)
	call := func(ctx context.Context, hc *http.Client, to string) int {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.urls[to], nil)
		resp, err := hc.Do(req)
		if err != nil {
			return http.StatusBadGateway
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	var servers []*httptest.Server
	for _, name := range []string{"payment", "order", "gateway"} { // callees first
		if u, ok := opts.external[name]; ok {
			s.urls[name] = u
			continue
		}
		exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(relayURL+"/api/1/integration/otlp/v1/traces"),
			otlptracehttp.WithHeaders(map[string]string{"X-Sentry-Auth": "Sentry sentry_key=" + fakesentry.DefaultPublicKey + ", sentry_version=7"}))
		require.NoError(t, err)
		tpOptions := []sdktrace.TracerProviderOption{sdktrace.WithSyncer(exp),
			sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", name)))}
		if opts.recorder != nil {
			tpOptions = append(tpOptions, sdktrace.WithSpanProcessor(opts.recorder))
		}
		tp := sdktrace.NewTracerProvider(tpOptions...)
		client, err := sentry.NewClient(sentryotel.WrapOptions(sentry.ClientOptions{Dsn: dsn, ServerName: name}))
		require.NoError(t, err)
		s.clients, s.tps = append(s.clients, client), append(s.tps, tp)
		hc := &http.Client{Transport: otelhttp.NewTransport(http.DefaultTransport, otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(opts.propagator))}
		var next string
		switch name {
		case "order":
			next = "payment"
		case "gateway":
			next = "order"
		}
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hub := sentry.NewHub(client, sentry.NewScope())
			ctx := sentry.SetHubOnContext(r.Context(), hub)
			if next == "" {
				sentryotel.CaptureException(ctx, errors.New("card declined"))
				w.WriteHeader(http.StatusPaymentRequired)
				return
			}
			if st := call(ctx, hc, next); st >= 400 {
				sentryotel.CaptureException(ctx, fmt.Errorf("%s answered %d", next, st))
				w.WriteHeader(http.StatusBadGateway)
			}
		})
		srv := httptest.NewServer(otelhttp.NewHandler(h, name, otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(opts.propagator)))
		servers = append(servers, srv)
		s.urls[name] = srv.URL
	}
	t.Cleanup(func() {
		for _, srv := range servers {
			srv.Close()
		}
		for _, c := range s.clients {
			c.Close()
		}
		for _, tp := range s.tps {
			_ = tp.Shutdown(context.Background())
		}
	})
	return s
}

// relayDSN returns the DSN of the fake Sentry's project with the relay's
// host: what an SDK is given to send to the relay.
func relayDSN(t *testing.T, relayURL string) string {
	t.Helper()
	u, err := url.Parse(relayURL)
	require.NoError(t, err)
	return fmt.Sprintf("http://%s@%s/%s", fakesentry.DefaultPublicKey, u.Host, fakesentry.DefaultProject)
}

// checkouts sends n failing checkouts, flushes the services' clients, and
// waits until n events reached upstream, without flushing the relay.
func (s *shop) checkouts(t *testing.T, n int, upstream *fakesentry.Server, srv *relay.Server) []fakesentry.Event {
	t.Helper()
	for range n {
		s.request(t)
	}
	for _, c := range s.clients {
		require.True(t, c.Flush(10*time.Second))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := upstream.WaitFor(ctx, n)
	require.NoError(t, err, "relay: %+v\nupstream: %+v", srv.Stats(), upstream.Stats())
	require.Len(t, got, n)
	return got
}

// request sends one failing checkout into the gateway under a trace of the
// test's own, as a load balancer would.
func (s *shop) request(t *testing.T) {
	t.Helper()
	tp := sdktrace.NewTracerProvider()
	defer func() { _ = tp.Shutdown(context.Background()) }()
	ctx, span := tp.Tracer("client").Start(context.Background(), "checkout")
	defer span.End()
	hc := &http.Client{Transport: otelhttp.NewTransport(http.DefaultTransport, otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(w3c))}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.urls["gateway"], nil)
	resp, err := hc.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusBadGateway, resp.StatusCode)
}

// Three services with no deduplicator of their own, each sending to the
// relay: N failing requests reach the upstream Sentry as N events, each
// payment's as sentry-go sent it, annotated with the two errors it stands
// for, each decided when its trace's spans had arrived rather than at the
// window's end.
func TestRelayCollapsesServicesThatRunNoTracedup(t *testing.T) {
	upstream, err := fakesentry.New()
	require.NoError(t, err)
	defer func() { _ = upstream.Close() }()
	u, err := url.Parse(upstream.URL())
	require.NoError(t, err)
	srv := relay.NewServer(u, relay.Config{Window: time.Hour})
	rs := httptest.NewServer(srv)
	defer rs.Close()
	defer func() { _ = srv.Shutdown(context.Background()) }()

	s := startShop(t, rs.URL, shopOptions{})
	const requests = 10
	// Decided a grace after each trace's spans arrived, with an hour's
	// window: the reports arrive without a flush of the relay.
	got := s.checkouts(t, requests, upstream, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st := srv.Stats()
	assert.Equal(t, uint64(requests), st.Relay.Dedup.RequestEnded, "%+v", st.Relay.Dedup)
	for _, ev := range got {
		e := ev.Event
		require.NotEmpty(t, e.Exception)
		assert.Equal(t, "card declined", e.Exception[len(e.Exception)-1].Value)
		assert.Equal(t, "2", e.Tags[dedup.TagSuppressed])
		assert.NotNil(t, e.Contexts[dedup.ContextKey])
	}
	require.True(t, srv.Flush(ctx))
	assert.Len(t, upstream.Events(), requests, "nothing more after a flush")
	d := srv.Stats().Relay.Dedup
	assert.Equal(t, uint64(3*requests), d.Received)
	assert.Equal(t, d.Received, d.Emitted+d.Suppressed+d.Pending+d.Dropped)
}
