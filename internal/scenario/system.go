package scenario

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"
	sentryhttp "github.com/getsentry/sentry-go/http"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/internal/sentrytest"
	"github.com/tracedup/tracedup/sentryotel"
)

// W3C is the propagator of every service and client of a System.
var W3C = propagation.TraceContext{}

// Service is one service of a System: a tracer provider, a sentry-go client
// with sentryotel's hook, a mux behind otelhttp and sentryhttp (which
// recovers panics), and an HTTP client behind otelhttp.
type Service struct {
	Name   string
	TP     *sdktrace.TracerProvider
	Client *sentry.Client
	Mux    *http.ServeMux
	Srv    *httptest.Server
	HTTP   *http.Client
	// BG is the service's background work: what it reports after its
	// responses is waited for before what reached Sentry is read.
	BG sync.WaitGroup
	// Dedup and Recorder are set by a wiring that runs a deduplicator in
	// the service (nil without tracedup) and gives it a Sentry of its own.
	Dedup    *dedup.Transport
	Recorder *sentrytest.Transport
}

// ServiceConfig is what a test asked of one service, for its Wiring.
type ServiceConfig struct {
	// Tracedup is false for a service without tracedup: what it changes
	// is the wiring's to say.
	Tracedup bool
	// DSN is the client's DSN, whose host names the Transport's fleet.
	DSN string
	// Sentry, where not nil, is the service's Sentry made of its recorder.
	Sentry func(*sentrytest.Transport) sentry.Transport
	// SpanInside puts the wiring's handler outside otelhttp, as around a
	// router whose own OTel middleware starts the span inside it (otelgin
	// in gin).
	SpanInside bool
	// Dedup are the options of the service's own deduplicator.
	Dedup []dedup.Option
}

// An Option changes a service of a System beside its name and whether it
// runs tracedup.
type Option func(*ServiceConfig)

// WithDSN sets the service's DSN.
func WithDSN(dsn string) Option { return func(c *ServiceConfig) { c.DSN = dsn } }

// WithSentry sets the service's Sentry, made of its recorder.
func WithSentry(to func(*sentrytest.Transport) sentry.Transport) Option {
	return func(c *ServiceConfig) { c.Sentry = to }
}

// WithSpanInside starts the request's span inside the wiring's handler.
func WithSpanInside() Option { return func(c *ServiceConfig) { c.SpanInside = true } }

// WithDedup adds options of the service's own deduplicator.
func WithDedup(options ...dedup.Option) Option {
	return func(c *ServiceConfig) { c.Dedup = append(c.Dedup, options...) }
}

// Wired is how a Wiring sets up one service.
type Wired struct {
	// TracerProvider are options of the service's tracer provider, beside
	// its resource.
	TracerProvider []sdktrace.TracerProviderOption
	// Client are the service's client options, before sentryotel's.
	Client sentry.ClientOptions
	// Handler, where not nil, wraps the service's handler: traced wraps a
	// handler in otelhttp, and Handler must call it once.
	Handler func(h http.Handler, traced func(http.Handler) http.Handler) http.Handler
	// Transport, where not nil, wraps the service's outgoing round
	// tripper, inside otelhttp's.
	Transport func(http.RoundTripper) http.RoundTripper
}

// A Wiring is how the services of one System report to Sentry, and reads
// what reached it.
type Wiring interface {
	// Name names the wiring in tables and in Scenario.Differ.
	Name() string
	// Service sets up s, whose Name is set, as cfg asks; it may set
	// s.Dedup and s.Recorder.
	Service(t testing.TB, s *Service, cfg ServiceConfig) Wired
	// Sent returns what reached Sentry, "service: type" for an error event
	// and "service: message: text" for a message, in any order, and how
	// many events the services captured. It is called once the services'
	// background work is done and their clients and tracer providers
	// flushed.
	Sent(t testing.TB, services []*Service) (sent []string, captured int)
}

// System is the services of one scenario, by name, under one Wiring.
type System struct {
	wiring   Wiring
	services map[string]*Service
}

// NewSystem returns a System without services, wired by w.
func NewSystem(w Wiring) *System { return &System{wiring: w, services: map[string]*Service{}} }

// Service returns the service named name, nil if none.
func (sys *System) Service(name string) *Service { return sys.services[name] }

// Start starts a service named name; without tracedup it has sentryotel's
// hook alone, and what else the wiring says. It stops when t ends.
func (sys *System) Start(t testing.TB, name string, tracedup bool, options ...Option) *Service {
	t.Helper()
	cfg := ServiceConfig{Tracedup: tracedup}
	for _, o := range options {
		o(&cfg)
	}
	s := &Service{Name: name, Mux: http.NewServeMux()}
	wired := sys.wiring.Service(t, s, cfg)
	s.TP = sdktrace.NewTracerProvider(append([]sdktrace.TracerProviderOption{
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", name)))},
		wired.TracerProvider...)...)
	client, err := sentry.NewClient(sentryotel.WrapOptions(wired.Client))
	require.NoError(t, err)
	s.Client = client

	var h http.Handler = sentryhttp.New(sentryhttp.Options{}).Handle(s.Mux)
	h = withHub(h, client)
	traced := func(h http.Handler) http.Handler {
		return otelhttp.NewHandler(h, name, otelhttp.WithTracerProvider(s.TP), otelhttp.WithPropagators(W3C))
	}
	if wired.Handler != nil {
		h = wired.Handler(h, traced)
	} else {
		h = traced(h)
	}
	var rt http.RoundTripper = http.DefaultTransport
	if wired.Transport != nil {
		rt = wired.Transport(rt)
	}
	s.Srv = httptest.NewServer(h)
	s.HTTP = &http.Client{Transport: otelhttp.NewTransport(rt,
		otelhttp.WithTracerProvider(s.TP), otelhttp.WithPropagators(W3C))}
	sys.services[name] = s
	t.Cleanup(func() {
		s.Srv.Close()
		s.BG.Wait()
		client.Close()
		_ = s.TP.Shutdown(context.Background())
	})
	return s
}

func withHub(next http.Handler, client *sentry.Client) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hub := sentry.NewHub(client, sentry.NewScope())
		next.ServeHTTP(w, r.WithContext(sentry.SetHubOnContext(r.Context(), hub)))
	})
}

// Capture reports err as a handler would, with the request's context.
func Capture(ctx context.Context, err error) { sentryotel.CaptureException(ctx, err) }

// Call makes a POST to another service of the system and returns its status.
func (s *Service) Call(ctx context.Context, to *Service, path string) int {
	return s.CallURL(ctx, to.Srv.URL+path)
}

// CallURL makes a POST to url and returns its status, 502 when it could
// not be made.
func (s *Service) CallURL(ctx context.Context, url string) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		panic(err)
	}
	resp, err := s.HTTP.Do(req)
	if err != nil {
		return http.StatusBadGateway
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// Fail is a handler that captures err and answers status.
func Fail(err error, status int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		Capture(r.Context(), err)
		w.WriteHeader(status)
	}
}

// Forward is a handler that calls path on to, and on a failure captures
// CallFailed and answers 502.
func (s *Service) Forward(to *Service, path string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if st := s.Call(r.Context(), to, path); st >= 400 {
			Capture(r.Context(), &CallFailed{st})
			w.WriteHeader(http.StatusBadGateway)
		}
	}
}

// Request sends one request into the system at entry, under a root span of
// the test's own, as a browser or load balancer would.
func (sys *System) Request(t testing.TB, entry, path string) {
	t.Helper()
	tp := sdktrace.NewTracerProvider()
	defer func() { _ = tp.Shutdown(context.Background()) }()
	ctx, span := tp.Tracer("client").Start(context.Background(), "request")
	defer span.End()
	client := &http.Client{Transport: otelhttp.NewTransport(http.DefaultTransport,
		otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(W3C))}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sys.services[entry].Srv.URL+path, nil)
	require.NoError(t, err)
	resp, err := client.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	require.NoError(t, resp.Body.Close())
}

// Sent waits for the services' background work, flushes every client and
// tracer provider and returns what reached Sentry, sorted (see
// Wiring.Sent).
func (sys *System) Sent(t testing.TB) []string {
	t.Helper()
	got, _ := sys.sent(t)
	return got
}

func (sys *System) sent(t testing.TB) (got []string, captured int) {
	t.Helper()
	services := make([]*Service, 0, len(sys.services))
	for _, s := range sys.services {
		services = append(services, s)
	}
	slices.SortFunc(services, func(a, b *Service) int { return strings.Compare(a.Name, b.Name) })
	for _, s := range services {
		s.BG.Wait()
		require.True(t, s.Client.Flush(10*time.Second), "%s: flush", s.Name)
		require.NoError(t, s.TP.ForceFlush(context.Background()), "%s: flush spans", s.Name)
	}
	got, captured = sys.wiring.Sent(t, services)
	slices.Sort(got)
	return got, captured
}

// Describe returns how an event reads in what reached Sentry: "service:
// type" for an error event, "service: message: text" for a message.
func Describe(service string, ev *sentry.Event) string {
	what := "message: " + ev.Message
	if n := len(ev.Exception); n > 0 {
		what = strings.TrimPrefix(ev.Exception[n-1].Type, TypePrefix)
	}
	return service + ": " + what
}
