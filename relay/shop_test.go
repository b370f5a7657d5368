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

	"github.com/getsentry/sentry-go"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/tracedup/tracedup/internal/fakesentry"
	"github.com/tracedup/tracedup/sentryotel"
)

// shop is three services that run no deduplicator: each stamps its errors
// with sentryotel's hook, sends them to the relay by its DSN, and exports
// its OTel spans to the relay's OTLP endpoint, as sentry-go recommends.
type shop struct {
	services map[string]*httptest.Server
	clients  []*sentry.Client
	tps      []*sdktrace.TracerProvider
}

var w3c = propagation.TraceContext{}

func startShop(t *testing.T, relayURL string) *shop {
	t.Helper()
	s := &shop{services: map[string]*httptest.Server{}}
	dsn := func() string {
		u, err := url.Parse(relayURL)
		require.NoError(t, err)
		return fmt.Sprintf("http://%s@%s/%s", fakesentry.DefaultPublicKey, u.Host, fakesentry.DefaultProject)
	}()
	call := func(ctx context.Context, hc *http.Client, to string) int {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.services[to].URL, nil)
		resp, err := hc.Do(req)
		if err != nil {
			return http.StatusBadGateway
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	for _, name := range []string{"payment", "order", "gateway"} { // callees first
		exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(relayURL+"/api/1/integration/otlp/v1/traces"),
			otlptracehttp.WithHeaders(map[string]string{"X-Sentry-Auth": "Sentry sentry_key=" + fakesentry.DefaultPublicKey + ", sentry_version=7"}))
		require.NoError(t, err)
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp),
			sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", name))))
		client, err := sentry.NewClient(sentryotel.WrapOptions(sentry.ClientOptions{Dsn: dsn, ServerName: name}))
		require.NoError(t, err)
		s.clients, s.tps = append(s.clients, client), append(s.tps, tp)
		hc := &http.Client{Transport: otelhttp.NewTransport(http.DefaultTransport, otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(w3c))}
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
		s.services[name] = httptest.NewServer(otelhttp.NewHandler(h, name, otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(w3c)))
	}
	t.Cleanup(func() {
		for _, srv := range s.services {
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

// request sends one failing checkout into the gateway under a trace of the
// test's own, as a load balancer would.
func (s *shop) request(t *testing.T) {
	t.Helper()
	tp := sdktrace.NewTracerProvider()
	defer func() { _ = tp.Shutdown(context.Background()) }()
	ctx, span := tp.Tracer("client").Start(context.Background(), "checkout")
	defer span.End()
	hc := &http.Client{Transport: otelhttp.NewTransport(http.DefaultTransport, otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(w3c))}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.services["gateway"].URL, nil)
	resp, err := hc.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusBadGateway, resp.StatusCode)
}
