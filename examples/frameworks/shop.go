package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/getsentry/sentry-go"
	"github.com/sirupsen/logrus"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/dedup/deduphttp"
	"github.com/tracedup/tracedup/sentryotel"
)

// The shop's services, from the edge inwards.
const (
	gateway = "gateway"
	order   = "order"
	payment = "payment"
)

// requestTimeout bounds one request between services, and the driver's.
const requestTimeout = 10 * time.Second

// propagator is W3C trace context, passed explicitly to every middleware
// and transport: the shop sets no OTel globals, so that its three services
// share one process exactly as they would be in three. A real service sets
// it once: otel.SetTextMapPropagator(propagation.TraceContext{}).
var propagator = propagation.TraceContext{}

// PaymentDeclined is payment's error: the origin of every cascade.
type PaymentDeclined struct{ Order int }

func (e *PaymentDeclined) Error() string { return fmt.Sprintf("order %d: card declined", e.Order) }

// ServiceCallFailed is order's error when its call to payment fails.
type ServiceCallFailed struct {
	Order  int
	Status int
}

func (e *ServiceCallFailed) Error() string {
	return fmt.Sprintf("order %d: payment answered %d", e.Order, e.Status)
}

// DownstreamError is the gateway's error when its call to order fails.
type DownstreamError struct {
	Order  int
	Status int
}

func (e *DownstreamError) Error() string {
	return fmt.Sprintf("order %d: order service answered %d", e.Order, e.Status)
}

// checkout is what each service is sent.
type checkout struct {
	Order int `json:"order"`
}

// service is one of the shop's three, served by the variant's framework.
type service struct {
	name      string
	client    *sentry.Client
	transport *dedup.Transport
	tp        *sdktrace.TracerProvider
	srv       *http.Server
	served    chan struct{}
	addr      string
	base      *http.Transport // the connections it calls downstream on
	log       *logrus.Logger  // for the logrus variant
	slog      *slog.Logger    // for the slog variants
	// call posts a checkout to the downstream service, with ctx, and
	// returns the status of the answer; nil for payment.
	call func(ctx context.Context, c checkout) (int, error)
}

// handle is the service's business logic, whatever the framework: payment
// declines every card; order and the gateway fail when their call fails.
// It returns the error for the framework's handler to capture and answer.
func (s *service) handle(ctx context.Context, c checkout) (status int, err error) {
	if s.call == nil {
		return http.StatusPaymentRequired, &PaymentDeclined{Order: c.Order}
	}
	code, err := s.call(ctx, c)
	if err == nil && code/100 == 2 {
		return http.StatusOK, nil
	}
	if s.name == order {
		return http.StatusBadGateway, &ServiceCallFailed{Order: c.Order, Status: code}
	}
	return http.StatusBadGateway, &DownstreamError{Order: c.Order, Status: code}
}

// shop is the three services of one variant, on loopback.
type shop struct {
	variant   variant
	services  []*service // payment, order, gateway
	sentryNet *http.Transport
}

// deploy starts the shop's services, payment first, each with its own
// tracer provider and Sentry client sending to dsn through a dedup.Transport.
// window, if not zero, is the transports' WithWindow.
func deploy(v variant, dsn string, window time.Duration) (*shop, error) {
	sh := &shop{variant: v, sentryNet: http.DefaultTransport.(*http.Transport).Clone()}
	var downstream *service
	for _, name := range []string{payment, order, gateway} {
		s, err := sh.start(name, dsn, window, downstream)
		if err != nil {
			sh.close(context.Background())
			return nil, err
		}
		downstream = s
	}
	return sh, nil
}

func (sh *shop) start(name, dsn string, window time.Duration, downstream *service) (*service, error) {
	var options []dedup.Option
	if window > 0 {
		options = append(options, dedup.WithWindow(window))
	}
	transport := dedup.NewTransport(sentry.NewHTTPTransport(), options...)
	client, err := sentry.NewClient(sentryotel.WrapOptions(sentry.ClientOptions{
		Dsn:           dsn,
		Transport:     transport,
		HTTPTransport: sh.sentryNet,
		ServerName:    name,
	}))
	if err != nil {
		transport.Close()
		return nil, fmt.Errorf("%s: sentry client: %w", name, err)
	}
	s := &service{
		name:      name,
		client:    client,
		transport: transport,
		served:    make(chan struct{}),
		log:       newLogrus(client),
		slog:      newSlog(client),
		tp: sdktrace.NewTracerProvider(
			sdktrace.WithSampler(sdktrace.AlwaysSample()),
			sdktrace.WithSpanProcessor(sentryotel.NewSpanProcessor()),
			sdktrace.WithResource(resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(name))),
		),
	}
	sh.services = append(sh.services, s)
	if downstream != nil {
		s.base = http.DefaultTransport.(*http.Transport).Clone()
		httpClient := &http.Client{
			Transport: otelhttp.NewTransport(deduphttp.NewTransport(s.base, transport),
				otelhttp.WithTracerProvider(s.tp), otelhttp.WithPropagators(propagator)),
			Timeout: requestTimeout,
		}
		url := "http://" + downstream.addr + path[downstream.name]
		s.call = func(ctx context.Context, c checkout) (int, error) {
			return postJSON(ctx, httpClient, url, c, nil)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		close(s.served)
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	s.addr = ln.Addr().String()
	// Outermost, a hub per request on the service's own client, as
	// sentry.Init's global hub would be in a process of one service.
	s.srv = &http.Server{Handler: withHub(sh.variant.server(s), client), ReadHeaderTimeout: requestTimeout}
	go func() {
		defer close(s.served)
		_ = s.srv.Serve(ln) // http.ErrServerClosed after Shutdown
	}()
	return s, nil
}

// path is where each service serves its one route.
var path = map[string]string{payment: "/charge", order: "/orders", gateway: "/checkout"}

// withHub gives each request a hub of its own on the service's client.
func withHub(next http.Handler, client *sentry.Client) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hub := sentry.NewHub(client, sentry.NewScope())
		next.ServeHTTP(w, r.WithContext(sentry.SetHubOnContext(r.Context(), hub)))
	})
}

// drive sends n checkouts to the gateway, one after another, each in a trace
// of its own that the driver starts, as a caller with a tracer would, and
// returns the trace id of each checkout by order number (1 to n).
func (sh *shop) drive(ctx context.Context, n int) (map[int]trace.TraceID, error) {
	gw := sh.services[len(sh.services)-1]
	tr := http.DefaultTransport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: requestTimeout}
	url := "http://" + gw.addr + path[gateway]
	traces := make(map[int]trace.TraceID, n)
	for i := 1; i <= n; i++ {
		sc := trace.NewSpanContext(trace.SpanContextConfig{
			TraceID:    newTraceID(),
			SpanID:     newSpanID(),
			TraceFlags: trace.FlagsSampled,
			Remote:     true,
		})
		traces[i] = sc.TraceID()
		header := http.Header{}
		propagator.Inject(trace.ContextWithSpanContext(ctx, sc), propagation.HeaderCarrier(header))
		code, err := postJSON(ctx, client, url, checkout{Order: i}, header)
		if err != nil {
			return traces, fmt.Errorf("checkout %d: %w", i, err)
		}
		if code != http.StatusBadGateway {
			return traces, fmt.Errorf("checkout %d: the gateway answered %d, want %d", i, code, http.StatusBadGateway)
		}
	}
	return traces, nil
}

// stop shuts the servers down, from the edge inwards, and waits for them:
// every request served has ended, and told its Transport so.
func (sh *shop) stop(ctx context.Context) {
	for _, s := range slices.Backward(sh.services) {
		_ = s.srv.Shutdown(ctx)
		<-s.served
		if s.base != nil {
			s.base.CloseIdleConnections()
		}
	}
}

// flush sends what every client holds; false if ctx ends first.
func (sh *shop) flush(ctx context.Context) bool {
	ok := true
	for _, s := range sh.services {
		ok = s.client.FlushWithContext(ctx) && ok
	}
	return ok
}

// stats returns each service's dedup counters.
func (sh *shop) stats() map[string]dedup.Stats {
	m := make(map[string]dedup.Stats, len(sh.services))
	for _, s := range sh.services {
		m[s.name] = s.transport.Stats()
	}
	return m
}

// close stops everything the shop started; call it once.
func (sh *shop) close(ctx context.Context) {
	for _, s := range slices.Backward(sh.services) {
		if s.srv != nil {
			_ = s.srv.Shutdown(ctx)
			<-s.served
		}
		if s.base != nil {
			s.base.CloseIdleConnections()
		}
		_ = s.tp.Shutdown(ctx)
	}
	for _, s := range sh.services {
		s.client.Close() // closes the dedup transport, then the HTTP one
	}
	sh.sentryNet.CloseIdleConnections()
}

// postJSON posts c to url with ctx and header, and returns the answer's status.
func postJSON(ctx context.Context, client *http.Client, url string, c checkout, header http.Header) (int, error) {
	body, _ := json.Marshal(c) // a struct of an int: cannot fail
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body) // to the end, so the connection is reused
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// newTraceID and newSpanID draw random ids, never all zero.
func newTraceID() (id trace.TraceID) {
	for !id.IsValid() {
		_, _ = rand.Read(id[:])
	}
	return id
}

func newSpanID() (id trace.SpanID) {
	for !id.IsValid() {
		_, _ = rand.Read(id[:])
	}
	return id
}

// decode reads the checkout a service was sent.
func decode(r io.Reader) (checkout, error) {
	var c checkout
	err := json.NewDecoder(r).Decode(&c)
	if err == nil && c.Order <= 0 {
		err = errors.New("no order number")
	}
	return c, err
}
