package deduphttp_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/dedup/deduphttp"
	"github.com/tracedup/tracedup/internal/scenario"
)

// The trust of the acknowledgement, end to end: real services on loopback,
// each with its own sentry-go client (and DSN), deduplicator, otelhttp and
// deduphttp, as in the scenarios. An acknowledgement silences a caller's
// error, so only a service of the caller's fleet may give one, and only a
// caller of the fleet is told anything.

// DSNs of two Sentry organisations on sentry.io: the host names the fleet.
const (
	org1Project1 = "https://public1@o101.ingest.us.sentry.io/1"
	org1Project2 = "https://public2@o101.ingest.us.sentry.io/2"
	org1Project3 = "https://public3@o101.ingest.us.sentry.io/3"
	org2Project1 = "https://public1@o202.ingest.us.sentry.io/1"
)

const zeroID = "00000000000000000000000000000000"

// A stranger (any third-party API) that answers a failed call with a
// Tracedup-Reported of its making silences nothing: the caller's error
// reaches its Sentry, and the answer is counted as untrusted.
func TestStrangerCannotSilenceTheCaller(t *testing.T) {
	for _, answer := range []string{zeroID, zeroID + ";m=" + zeroID, zeroID + "; m=" + zeroID + "; n=" + zeroID} {
		t.Run(answer, func(t *testing.T) {
			stranger := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set(deduphttp.HeaderReported, answer)
				w.WriteHeader(http.StatusBadGateway)
			}))
			t.Cleanup(stranger.Close)
			sys := newSystem()
			order := sys.Start(t, "order", true, scenario.WithDSN(org1Project1))
			order.Mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
				if st := order.CallURL(r.Context(), stranger.URL+"/charge"); st >= 400 {
					scenario.Capture(r.Context(), &scenario.CallFailed{Status: st})
					w.WriteHeader(http.StatusBadGateway)
				}
			})
			const n = 3
			for range n {
				sys.Request(t, "order", "/orders")
			}
			assert.Equal(t, slices.Repeat([]string{"order: CallFailed"}, n), sys.Sent(t), "what reached Sentry")
			s := order.Dedup.Stats()
			assert.Zero(t, s.Cascades, "%+v", s)
			assert.Equal(t, uint64(n), s.Untrusted, "the stranger's answers are counted")
		})
	}
}

// A partner running tracedup with its own Sentry (another organisation's
// DSN: another fleet) reports its error to its own Sentry; ours never hears
// of it, so the caller reports its own error.
func TestPartnerCannotSilenceTheCaller(t *testing.T) {
	sys := newSystem()
	order := sys.Start(t, "order", true, scenario.WithDSN(org1Project1))
	partner := sys.Start(t, "partner", true, scenario.WithDSN(org2Project1))
	partner.Mux.Handle("POST /charge", scenario.Fail(&scenario.PaymentDeclined{}, http.StatusPaymentRequired))
	order.Mux.Handle("POST /orders", order.Forward(partner, "/charge"))
	const n = 3
	for range n {
		sys.Request(t, "order", "/orders")
	}
	want := append(slices.Repeat([]string{"order: CallFailed"}, n), slices.Repeat([]string{"partner: PaymentDeclined"}, n)...)
	assert.Equal(t, want, sys.Sent(t), "what reached each Sentry")
	assert.Zero(t, order.Dedup.Stats().Cascades)
}

// An external client of the edge service, which does not announce itself
// as a caller of the fleet (or announces itself falsely), never sees
// Tracedup-Reported, though the edge reported the error of its request; nor
// a header the handler set itself (a proxy copying a downstream's).
func TestExternalClientSeesNoProtocol(t *testing.T) {
	sys := newSystem()
	edge := sys.Start(t, "edge", true, scenario.WithDSN(org1Project1))
	edge.Mux.Handle("POST /fail", scenario.Fail(&scenario.PaymentDeclined{}, http.StatusInternalServerError))
	edge.Mux.HandleFunc("POST /proxy", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(deduphttp.HeaderReported, zeroID) // copied from a downstream's response
		scenario.Fail(&scenario.PaymentDeclined{}, http.StatusInternalServerError)(w, r)
	})
	edge.Mux.HandleFunc("POST /ok-proxy", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(deduphttp.HeaderReported, zeroID)
	})
	for _, tt := range []struct{ path, announcement string }{
		{"/fail", ""},
		{"/fail", "n=" + zeroID + ";m=" + zeroID},
		{"/fail", "garbage"},
		{"/proxy", ""},
		{"/ok-proxy", ""},
	} {
		header := externalRequest(t, edge, tt.path, tt.announcement)
		assert.Empty(t, header.Values(deduphttp.HeaderReported), "%s, announcing %q", tt.path, tt.announcement)
	}
	assert.Len(t, sys.Sent(t), 4, "the edge reported each failure")
}

// Inside one fleet (one Sentry organisation, a project per service) the
// cascade collapses as before, with no configuration: only the origin
// reaches Sentry.
func TestOneFleetCollapsesWithoutConfiguration(t *testing.T) {
	sys := newSystem()
	gw := sys.Start(t, "gateway", true, scenario.WithDSN(org1Project1))
	order := sys.Start(t, "order", true, scenario.WithDSN(org1Project2))
	pay := sys.Start(t, "payment", true, scenario.WithDSN(org1Project3))
	pay.Mux.Handle("POST /charge", scenario.Fail(&scenario.PaymentDeclined{}, http.StatusPaymentRequired))
	order.Mux.Handle("POST /orders", order.Forward(pay, "/charge"))
	gw.Mux.Handle("POST /checkout", gw.Forward(order, "/orders"))
	const n = 3
	for range n {
		sys.Request(t, "gateway", "/checkout")
	}
	assert.Equal(t, slices.Repeat([]string{"payment: PaymentDeclined"}, n), sys.Sent(t))
	for _, s := range []*scenario.Service{gw, order} {
		st := s.Dedup.Stats()
		assert.Equal(t, uint64(n), st.Cascades, "%s: %+v", s.Name, st)
		assert.Zero(t, st.Untrusted, "%s", s.Name)
	}
}

// WithFleetKey makes a fleet of the services that share the key, whatever
// their DSNs: a cascade across two organisations collapses when both sides
// hold the key, and not when only one does (both report).
func TestFleetKey(t *testing.T) {
	key := []byte("a shared secret of the two teams")
	for _, tt := range []struct {
		name         string
		caller, down []dedup.Option
		want         []string
	}{
		{"on both sides", []dedup.Option{dedup.WithFleetKey(key)}, []dedup.Option{dedup.WithFleetKey(key)},
			[]string{"payment: PaymentDeclined"}},
		{"on the caller only", []dedup.Option{dedup.WithFleetKey(key)}, nil,
			[]string{"order: CallFailed", "payment: PaymentDeclined"}},
		{"on the callee only", nil, []dedup.Option{dedup.WithFleetKey(key)},
			[]string{"order: CallFailed", "payment: PaymentDeclined"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sys := newSystem()
			order := sys.Start(t, "order", true, scenario.WithDSN(org1Project1), scenario.WithDedup(tt.caller...))
			pay := sys.Start(t, "payment", true, scenario.WithDSN(org2Project1), scenario.WithDedup(tt.down...))
			pay.Mux.Handle("POST /charge", scenario.Fail(&scenario.PaymentDeclined{}, http.StatusPaymentRequired))
			order.Mux.Handle("POST /orders", order.Forward(pay, "/charge"))
			sys.Request(t, "order", "/orders")
			assert.Equal(t, tt.want, sys.Sent(t))
		})
	}
}

// externalRequest is a client outside the fleet calling s, traced (it
// propagates its trace, as a browser or another company's service may),
// with HeaderCaller set to announcement unless it is "". It returns the
// response header.
func externalRequest(t *testing.T, s *scenario.Service, path, announcement string) http.Header {
	t.Helper()
	tp := sdktrace.NewTracerProvider()
	defer func() { _ = tp.Shutdown(context.Background()) }()
	ctx, span := tp.Tracer("client").Start(context.Background(), "request")
	defer span.End()
	client := &http.Client{Transport: otelhttp.NewTransport(http.DefaultTransport,
		otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(scenario.W3C))}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.Srv.URL+path, nil)
	require.NoError(t, err)
	if announcement != "" {
		req.Header.Set(deduphttp.HeaderCaller, announcement)
	}
	resp, err := client.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	require.NoError(t, resp.Body.Close())
	return resp.Header
}
