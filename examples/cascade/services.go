package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/getsentry/sentry-go"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/dedup/deduphttp"
	"github.com/tracedup/tracedup/sentryotel"
)

// The three services of the demo, from the edge inwards.
const (
	gateway = "gateway"
	order   = "order"
	payment = "payment"
)

// monolith names the one Sentry client of a modular monolith.
const monolith = "monolith"

// The error types each service captures. A type of their own names the
// exception in Sentry ("*main.PaymentDeclined"), as the article's Python
// exception classes do, and lets Sentry's default grouping tell them apart.

// PaymentDeclined is the root cause: the card was declined. Payment captures
// it and answers 402.
type PaymentDeclined struct {
	Order int
	Last4 string // the card's last four digits
}

func (e *PaymentDeclined) Error() string {
	return fmt.Sprintf("order %d: card ending %s declined", e.Order, e.Last4)
}

// ServiceCallFailed is the first cascade: order's call to payment did not
// succeed. Order captures it and answers 502.
type ServiceCallFailed struct {
	Order   int
	Service string // the service called
	Status  int    // its HTTP status; 0 when there was no response
	Err     error  // why there was no response
}

func (e *ServiceCallFailed) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("order %d: call to %s: %v", e.Order, e.Service, e.Err)
	}
	return fmt.Sprintf("order %d: call to %s: %d %s", e.Order, e.Service, e.Status, http.StatusText(e.Status))
}

func (e *ServiceCallFailed) Unwrap() error { return e.Err }

// DownstreamError is the second cascade: the gateway's call to order did not
// succeed. The gateway captures it and answers 502 to the user.
type DownstreamError struct {
	Order   int
	Service string // the service called
	Status  int    // its HTTP status; 0 when there was no response
	Err     error  // why there was no response
}

func (e *DownstreamError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("checkout %d: %s: %v", e.Order, e.Service, e.Err)
	}
	return fmt.Sprintf("checkout %d: %s answered %d %s", e.Order, e.Service, e.Status, http.StatusText(e.Status))
}

func (e *DownstreamError) Unwrap() error { return e.Err }

// checkout is one request of the load, passed down unchanged from the gateway
// to payment: which order, paid with which card. Whether payment fails is
// decided by the card, as with a card processor's test cards, so the load
// generator alone decides which requests fail.
type checkout struct {
	Order int    `json:"order"`
	Card  string `json:"card"`
}

const (
	cardOK       = "4242424242424242" // always accepted
	cardDeclined = "4000000000000002" // always declined
)

// mode is how the services report to Sentry.
type mode string

const (
	// baseline: the sentryotel hook alone; every service reports every
	// error it sees.
	baseline mode = "baseline"
	// tracedup: the hook, a dedup.Transport
	// per client, and the cross-service protocol (Handler, RoundTripper).
	tracedup mode = "tracedup"
)

// topology is what to deploy: how the services report, and the variations
// that the flags and the tests ask for. Fields left zero give three services,
// each with its own client, all of them speaking the cross-service protocol.
type topology struct {
	mode mode
	dsn  string
	// window is the dedup window (dedup.WithWindow); 0 keeps dedup's default.
	window time.Duration
	// sendCascades sends cascades tagged instead of suppressing them
	// (dedup.WithSendCascades).
	sendCascades bool
	// monolith runs the three services on one Sentry client with one plain
	// dedup.Transport, as the modules of one process would share them: no
	// Handler, no RoundTripper, the deduplicator sees the whole cascade.
	monolith bool
	// noAck names services whose server does not run dedup's Handler, as a
	// service not yet upgraded: it never tells its caller that it reported.
	noAck map[string]bool
	// clientOptions, if not nil, may change a Sentry client's options before
	// it is made (name is the service, or "monolith"). Tests use it to sample
	// out or drop a service's events.
	clientOptions func(name string, opts *sentry.ClientOptions)
}

// reporter is one Sentry client and what it did.
type reporter struct {
	name   string
	client *sentry.Client
	dedup  *dedup.Transport // nil in the baseline
	// captured counts the events that passed sampling and the hooks: what
	// the client handed to its transport.
	captured atomic.Uint64
}

// service is one HTTP service of the demo.
type service struct {
	name     string
	tp       *sdktrace.TracerProvider
	reporter *reporter
	url      string
	srv      *http.Server
	served   chan struct{} // closed when Serve returned
	// outbound carries the service's calls to its downstream; nil for
	// payment, which calls nobody.
	outbound   *http.Client
	downstream string // the downstream's URL
	base       *http.Transport
}

// deployment is a running topology: three services and their Sentry clients.
type deployment struct {
	topo      topology
	services  []*service  // payment, order, gateway: the order they start in
	reporters []*reporter // one per service, or one in a monolith
	sentryNet *http.Transport
}

// propagator is passed explicitly to every otelhttp handler and transport:
// the demo sets no OTel globals, so three services can share one process
// exactly as they would be in three.
var propagator = propagation.TraceContext{}

// deploy starts the topology's services on loopback ports: payment, then
// order calling payment, then the gateway calling order.
func deploy(topo topology) (*deployment, error) {
	d := &deployment{topo: topo, sentryNet: http.DefaultTransport.(*http.Transport).Clone()}
	var shared *reporter
	if topo.monolith {
		r, err := d.newReporter(monolith)
		if err != nil {
			return nil, err
		}
		shared = r
	}
	downstream := ""
	for _, name := range []string{payment, order, gateway} {
		r := shared
		if r == nil {
			var err error
			if r, err = d.newReporter(name); err != nil {
				d.shutdown(context.Background())
				return nil, err
			}
		}
		s, err := d.start(name, r, downstream)
		if err != nil {
			d.shutdown(context.Background())
			return nil, err
		}
		downstream = s.url
	}
	return d, nil
}

// newReporter makes a Sentry client of its own (sentry.NewClient, not the
// global one) for the named service or monolith.
func (d *deployment) newReporter(name string) (*reporter, error) {
	r := &reporter{name: name}
	// The old HTTP transport is set explicitly: it is the one a dedup
	// transport wraps, and the baseline uses it too, so that both columns
	// go through the same sending path.
	var transport sentry.Transport = sentry.NewHTTPTransport()
	if d.topo.mode == tracedup {
		opts := []dedup.Option{dedup.WithWindow(d.topo.window)}
		if d.topo.sendCascades {
			opts = append(opts, dedup.WithSendCascades())
		}
		r.dedup = dedup.NewTransport(transport, opts...)
		transport = r.dedup
	}
	opts := sentry.ClientOptions{
		Dsn:           d.topo.dsn,
		Transport:     transport,
		HTTPTransport: d.sentryNet,
		ServerName:    name,
		// Runs after tracedup's hook, on the stamped event.
		BeforeSend: func(ev *sentry.Event, _ *sentry.EventHint) *sentry.Event {
			r.captured.Add(1)
			return ev
		},
	}
	if d.topo.clientOptions != nil {
		d.topo.clientOptions(name, &opts)
	}
	client, err := sentry.NewClient(sentryotel.WrapOptions(opts))
	if err != nil {
		if r.dedup != nil {
			r.dedup.Close()
		}
		return nil, fmt.Errorf("%s: sentry client: %w", name, err)
	}
	r.client = client
	d.reporters = append(d.reporters, r)
	return r, nil
}

// start runs one service on 127.0.0.1 with its own tracer provider, whose
// resource names the service: the hook reads service.name from it.
func (d *deployment) start(name string, r *reporter, downstream string) (*service, error) {
	s := &service{
		name:       name,
		reporter:   r,
		downstream: downstream,
		served:     make(chan struct{}),
		tp: sdktrace.NewTracerProvider(
			sdktrace.WithSampler(sdktrace.AlwaysSample()),
			// The span processor lets the hook stamp each error's chain of
			// enclosing spans, which the deduplicator reads.
			sdktrace.WithSpanProcessor(sentryotel.NewSpanProcessor()),
			sdktrace.WithResource(resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(name))),
		),
	}
	// Track the service before anything can fail, so shutdown stops it.
	d.services = append(d.services, s)
	crossService := d.topo.mode == tracedup && !d.topo.monolith

	if downstream != "" {
		s.base = http.DefaultTransport.(*http.Transport).Clone()
		s.base.MaxIdleConnsPerHost = 64
		// Client side, inside out: the RoundTripper reads the downstream's
		// Tracedup-Reported header and records it for the request's trace,
		// which it finds in req.Context(); otelhttp wraps it, so it sees
		// the client span otelhttp started (either span would do: both
		// are in the same trace).
		var rt http.RoundTripper = s.base
		if crossService {
			rt = deduphttp.NewTransport(rt, r.dedup)
		}
		s.outbound = &http.Client{
			Transport: otelhttp.NewTransport(rt,
				otelhttp.WithTracerProvider(s.tp), otelhttp.WithPropagators(propagator)),
			Timeout: requestTimeout,
		}
	}

	mux := http.NewServeMux()
	switch name {
	case payment:
		mux.HandleFunc("POST /charge", s.charge)
	case order:
		mux.HandleFunc("POST /orders", s.placeOrder)
	case gateway:
		mux.HandleFunc("POST /checkout", s.checkout)
	}
	// Server side, outside in: otelhttp first, so that the span it starts
	// (continuing the caller's trace from traceparent) is in the context
	// that dedup's Handler and the handlers see; then dedup's Handler,
	// which sets Tracedup-Reported when the response header is written;
	// then a hub per request, so captures find the service's client.
	h := withHub(mux, r.client)
	if crossService && !d.topo.noAck[name] {
		h = deduphttp.NewHandler(h, r.dedup)
	}
	h = otelhttp.NewHandler(h, name, otelhttp.WithTracerProvider(s.tp), otelhttp.WithPropagators(propagator))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		close(s.served)
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	s.url = "http://" + ln.Addr().String()
	s.srv = &http.Server{Handler: h, ReadHeaderTimeout: requestTimeout}
	go func() {
		defer close(s.served)
		_ = s.srv.Serve(ln) // http.ErrServerClosed after Shutdown
	}()
	return s, nil
}

// withHub gives each request a hub of its own on the service's client, as
// sentryhttp does, so that scope data never leaks between requests.
func withHub(next http.Handler, client *sentry.Client) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hub := sentry.NewHub(client, sentry.NewScope())
		next.ServeHTTP(w, r.WithContext(sentry.SetHubOnContext(r.Context(), hub)))
	})
}

// charge is payment's handler: it declines the declined test card.
func (s *service) charge(w http.ResponseWriter, r *http.Request) {
	var c checkout
	if err := json.NewDecoder(r.Body).Decode(&c); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if c.Card == cardDeclined {
		err := &PaymentDeclined{Order: c.Order, Last4: c.Card[len(c.Card)-4:]}
		// Capture before writing the response: the event reaches the
		// Transport now, so the Handler can acknowledge it in the header.
		sentryotel.CaptureException(r.Context(), err)
		http.Error(w, err.Error(), http.StatusPaymentRequired)
		return
	}
	writeJSON(w, map[string]string{"status": "paid"})
}

// placeOrder is order's handler: it charges the card through payment.
func (s *service) placeOrder(w http.ResponseWriter, r *http.Request) {
	c, status, err := s.forward(r, "/charge")
	if err == nil && status/100 != 2 {
		err = &ServiceCallFailed{Order: c.Order, Service: payment, Status: status}
	} else if err != nil {
		err = &ServiceCallFailed{Order: c.Order, Service: payment, Err: err}
	}
	if err != nil {
		sentryotel.CaptureException(r.Context(), err)
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	writeJSON(w, map[string]string{"status": "placed"})
}

// checkout is the gateway's handler: it places the order through order.
func (s *service) checkout(w http.ResponseWriter, r *http.Request) {
	c, status, err := s.forward(r, "/orders")
	if err == nil && status/100 != 2 {
		err = &DownstreamError{Order: c.Order, Service: order, Status: status}
	} else if err != nil {
		err = &DownstreamError{Order: c.Order, Service: order, Err: err}
	}
	if err != nil {
		sentryotel.CaptureException(r.Context(), err)
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	writeJSON(w, map[string]string{"status": "ok"})
}

// forward posts the request's checkout to path on the downstream service,
// with the request's context so that the trace continues there, and returns
// the checkout and the status of the answer.
func (s *service) forward(r *http.Request, path string) (checkout, int, error) {
	var c checkout
	if err := json.NewDecoder(r.Body).Decode(&c); err != nil {
		return c, 0, err
	}
	body, _ := json.Marshal(c) // a struct of an int and a string: cannot fail
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, s.downstream+path, bytes.NewReader(body))
	if err != nil {
		return c, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.outbound.Do(req)
	if err != nil {
		return c, 0, err
	}
	// Read the body to the end so the connection is reused.
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return c, resp.StatusCode, nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// flush sends every event the clients hold: dedup ends its windows early and
// hands their root causes on, and the HTTP transports deliver everything
// queued. It returns false if ctx ends first.
func (d *deployment) flush(ctx context.Context) bool {
	ok := true
	for _, r := range d.reporters {
		if !r.client.FlushWithContext(ctx) {
			ok = false
		}
	}
	return ok
}

// shutdown stops the servers, closes the clients (after flushing them) and
// the connections the deployment opened, and waits for every goroutine it
// started. Call it once the load is done.
func (d *deployment) shutdown(ctx context.Context) {
	// From the edge inwards: each caller's idle connections are closed
	// before its callee shuts down. A connection that a caller dialed but
	// never used counts as active to http.Server.Shutdown for 5 seconds;
	// closing it first lets the callee stop at once.
	for _, s := range slices.Backward(d.services) {
		if s.srv != nil {
			_ = s.srv.Shutdown(ctx)
		}
		<-s.served
		if s.base != nil {
			s.base.CloseIdleConnections()
		}
		_ = s.tp.Shutdown(ctx)
	}
	d.flush(ctx)
	for _, r := range d.reporters {
		r.client.Close() // closes the dedup transport, then the HTTP one
	}
	d.sentryNet.CloseIdleConnections()
}

// gatewayURL is where the load goes.
func (d *deployment) gatewayURL() string {
	return d.services[len(d.services)-1].url + "/checkout"
}
