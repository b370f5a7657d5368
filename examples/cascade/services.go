package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/getsentry/sentry-go"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"google.golang.org/grpc"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/dedup/deduphttp"
	"github.com/tracedup/tracedup/relay"
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
	// viaRelay: the hook alone in each service, which sends its errors and
	// its spans to a tracedup-relay that deduplicates across services.
	viaRelay mode = "relay"
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
	// protocol is how the services call each other; "" is protocolHTTP.
	protocol protocol
	// clientOptions, if not nil, may change a Sentry client's options before
	// it is made (name is the service, or "monolith"). Tests use it to sample
	// out or drop a service's events.
	clientOptions func(name string, opts *sentry.ClientOptions)
	// otlp, when set, is where each service exports its spans (OTLP over
	// HTTP, as sentry-go recommends sending OTel spans to Sentry); relay is
	// the relay in this process that the DSN and otlp point at, flushed
	// before the services count what arrived.
	otlp  string
	relay *relay.Server
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

// service is one service of the demo, served over HTTP or gRPC.
type service struct {
	name     string
	tp       *sdktrace.TracerProvider
	reporter *reporter
	protocol protocol // what it serves: protocolHTTP or protocolGRPC
	addr     string   // host:port it listens on
	srv      *http.Server
	grpcSrv  *grpc.Server
	served   chan struct{} // closed when Serve returned
	// call calls the service's downstream with a checkout and returns the
	// HTTP status of the answer (200 for a gRPC call that succeeded, 0
	// when there was no answer) and why there was none; nil for payment,
	// which calls nobody.
	call func(ctx context.Context, c checkout) (int, error)
	// What call uses, closed at shutdown.
	base *http.Transport
	conn *grpc.ClientConn
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
	var downstream *service
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
		downstream = s
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
		opts := []dedup.Option{
			dedup.WithWindow(d.topo.window),
			// The types the services wrap a failed call in: only these
			// follow from a downstream failure; any other error of a
			// caller is its own, and is reported.
			dedup.WithCascadeTypes("ServiceCallFailed", "DownstreamError"),
		}
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
// resource names the service: the hook reads service.name from it. It calls
// downstream, unless that is nil.
func (d *deployment) start(name string, r *reporter, downstream *service) (*service, error) {
	s := &service{
		name:     name,
		reporter: r,
		protocol: d.topo.protocol.of(name),
		served:   make(chan struct{}),
		tp: sdktrace.NewTracerProvider(
			sdktrace.WithSampler(sdktrace.AlwaysSample()),
			// The span processor lets the hook stamp each error's chain of
			// enclosing spans, which the deduplicator reads.
			sdktrace.WithSpanProcessor(sentryotel.NewSpanProcessor()),
			sdktrace.WithResource(resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(name))),
		),
	}
	if d.topo.otlp != "" {
		exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(d.topo.otlp),
			otlptracehttp.WithHeaders(map[string]string{"X-Sentry-Auth": "Sentry sentry_key=" + dsnKey(d.topo.dsn) + ", sentry_version=7"}))
		if err != nil {
			return nil, fmt.Errorf("%s: OTLP exporter: %w", name, err)
		}
		// Spans go as they end: the relay decides a trace once its spans
		// have come.
		s.tp.RegisterSpanProcessor(sdktrace.NewSimpleSpanProcessor(exp))
	}
	// Track the service before anything can fail, so shutdown stops it.
	d.services = append(d.services, s)
	crossService := d.topo.mode == tracedup && !d.topo.monolith
	acknowledges := crossService && !d.topo.noAck[name]

	if downstream != nil {
		var err error
		if downstream.protocol == protocolGRPC {
			err = s.dialGRPC(downstream, crossService)
		} else {
			s.dialHTTP(downstream, crossService)
		}
		if err != nil {
			close(s.served)
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		close(s.served)
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	s.addr = ln.Addr().String()
	if s.protocol == protocolGRPC {
		s.serveGRPC(ln, acknowledges)
	} else {
		s.serveHTTP(ln, acknowledges)
	}
	return s, nil
}

// dialHTTP makes s call downstream over HTTP.
func (s *service) dialHTTP(downstream *service, crossService bool) {
	s.base = http.DefaultTransport.(*http.Transport).Clone()
	s.base.MaxIdleConnsPerHost = 64
	// Client side, inside out: the RoundTripper reads the downstream's
	// Tracedup-Reported header and records it for the request's trace,
	// which it finds in req.Context(); otelhttp wraps it, so it sees the
	// client span otelhttp started (either span would do: both are in the
	// same trace).
	var rt http.RoundTripper = s.base
	if crossService {
		rt = deduphttp.NewTransport(rt, s.reporter.dedup)
	}
	client := &http.Client{
		Transport: otelhttp.NewTransport(rt, otelhttp.WithTracerProvider(s.tp), otelhttp.WithPropagators(propagator)),
		Timeout:   requestTimeout,
	}
	url := "http://" + downstream.addr + httpPath[downstream.name]
	s.call = func(ctx context.Context, c checkout) (int, error) {
		return postJSON(ctx, client, url, c)
	}
}

// serveHTTP serves s's handler over HTTP on ln.
func (s *service) serveHTTP(ln net.Listener, acknowledges bool) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+httpPath[s.name], func(w http.ResponseWriter, r *http.Request) {
		var c checkout
		if err := json.NewDecoder(r.Body).Decode(&c); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := s.handle(r.Context(), c); err != nil {
			http.Error(w, err.Error(), httpStatus(err))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(reply{Status: answer[s.name]})
	})
	// Server side, outside in: otelhttp first, so that the span it starts
	// (continuing the caller's trace from traceparent) is in the context
	// that dedup's Handler and the handlers see; then dedup's Handler,
	// which sets Tracedup-Reported when the response header is written;
	// then a hub per request, so captures find the service's client.
	h := withHub(mux, s.reporter.client)
	if acknowledges {
		h = deduphttp.NewHandler(h, s.reporter.dedup)
	}
	h = otelhttp.NewHandler(h, s.name, otelhttp.WithTracerProvider(s.tp), otelhttp.WithPropagators(propagator))
	s.srv = &http.Server{Handler: h, ReadHeaderTimeout: requestTimeout}
	go func() {
		defer close(s.served)
		_ = s.srv.Serve(ln) // http.ErrServerClosed after Shutdown
	}()
}

// httpPath is where each service serves over HTTP.
var httpPath = map[string]string{payment: "/charge", order: "/orders", gateway: "/checkout"}

// answer is each service's reply to a request that succeeded.
var answer = map[string]string{payment: "paid", order: "placed", gateway: "ok"}

// reply is what a service answers to a request that succeeded.
type reply struct {
	Status string `json:"status"`
}

// httpStatus is the status a service answers a failed request with: 402 for
// a declined card, 502 for a failed call to its downstream.
func httpStatus(err error) int {
	var declined *PaymentDeclined
	if errors.As(err, &declined) {
		return http.StatusPaymentRequired
	}
	return http.StatusBadGateway
}

// withHub gives each request a hub of its own on the service's client, as
// sentryhttp does, so that scope data never leaks between requests.
func withHub(next http.Handler, client *sentry.Client) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hub := sentry.NewHub(client, sentry.NewScope())
		next.ServeHTTP(w, r.WithContext(sentry.SetHubOnContext(r.Context(), hub)))
	})
}

// handle is the service's handler, whatever the protocol: payment declines
// the declined test card; order charges the card through payment; the
// gateway places the order through order. Each captures its error before it
// returns it: the event reaches the Transport then, while the request is
// still being served, so the server can acknowledge it in its answer.
func (s *service) handle(ctx context.Context, c checkout) error {
	var err error
	switch s.name {
	case payment:
		if c.Card == cardDeclined {
			err = &PaymentDeclined{Order: c.Order, Last4: c.Card[len(c.Card)-4:]}
		}
	case order:
		if status, callErr := s.call(ctx, c); callErr != nil || status/100 != 2 {
			err = &ServiceCallFailed{Order: c.Order, Service: payment, Status: status, Err: callErr}
		}
	case gateway:
		if status, callErr := s.call(ctx, c); callErr != nil || status/100 != 2 {
			err = &DownstreamError{Order: c.Order, Service: order, Status: status, Err: callErr}
		}
	}
	if err != nil {
		sentryotel.CaptureException(ctx, err)
	}
	return err
}

// postJSON posts c to url with ctx, so that the trace continues there, and
// returns the status of the answer.
func postJSON(ctx context.Context, client *http.Client, url string, c checkout) (int, error) {
	body, _ := json.Marshal(c) // a struct of an int and a string: cannot fail
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	// Read the body to the end so the connection is reused.
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, nil
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
	if d.topo.relay != nil && !d.topo.relay.Flush(ctx) {
		ok = false // what the relay holds, decided and forwarded
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
		if s.grpcSrv != nil {
			s.grpcSrv.GracefulStop()
		}
		<-s.served
		if s.base != nil {
			s.base.CloseIdleConnections()
		}
		if s.conn != nil {
			_ = s.conn.Close()
		}
		_ = s.tp.Shutdown(ctx)
	}
	d.flush(ctx)
	for _, r := range d.reporters {
		r.client.Close() // closes the dedup transport, then the HTTP one
	}
	d.sentryNet.CloseIdleConnections()
}

// relayed is a tracedup-relay serving on loopback in this process.
type relayed struct {
	server    *relay.Server
	http      *http.Server
	served    chan struct{}
	dsn, otlp string
}

// startRelay starts a relay that forwards to the Sentry of dsn, and returns
// it with the DSN and OTLP endpoint that point the services at it: the same
// key and project, another host.
func startRelay(dsn string, window time.Duration) (*relayed, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	project := strings.Trim(u.Path, "/")
	upstream := &url.URL{Scheme: u.Scheme, Host: u.Host}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	r := &relayed{
		server: relay.NewServer(upstream, relay.Config{Window: window, Grace: window / 2,
			CascadeTypes: []string{"ServiceCallFailed", "DownstreamError"}}),
		served: make(chan struct{}),
	}
	r.http = &http.Server{Handler: r.server, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(r.served)
		_ = r.http.Serve(ln)
	}()
	at := *u
	at.Host = ln.Addr().String()
	at.Scheme = "http"
	r.dsn = at.String()
	r.otlp = "http://" + ln.Addr().String() + "/api/" + project + "/integration/otlp/v1/traces"
	return r, nil
}

// stop shuts the relay down, forwarding what it holds.
func (r *relayed) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	_ = r.http.Shutdown(ctx)
	<-r.served
	_ = r.server.Shutdown(ctx)
}

// dsnKey returns the public key of dsn.
func dsnKey(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return ""
	}
	return u.User.Username()
}
