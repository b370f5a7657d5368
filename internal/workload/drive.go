package workload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/getsentry/sentry-go"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracedup/tracedup/sentryotel"
)

// ContextKey names the context (sentry.Event.Contexts) in which every
// captured event carries the ID of its Event in the Plan, under "event": its
// ground truth. Strategies do not read it.
const ContextKey = "workload"

// Epoch is the wall-clock time that the load's virtual time 0 stands for.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Stack is what one service runs to report to Sentry. Nil functions mean
// none.
type Stack struct {
	// Options are the client's options: those given to Wiring.Stack, with
	// any hook installed and the transport wrapped. Options.Transport must
	// hand what it sends on to the given transport.
	Options sentry.ClientOptions
	// Server wraps the service's handler, inside otelhttp's: the request's
	// span is in its context.
	Server func(http.Handler) http.Handler
	// Client wraps the transport of the service's outgoing calls, inside
	// otelhttp's.
	Client func(http.RoundTripper) http.RoundTripper
	// TracerOptions are added to the service's TracerProvider.
	TracerOptions []sdktrace.TracerProviderOption
	// Window is how long, in the load's virtual time, the transport holds a
	// trace's events from the first before it sends; 0 if it sends at once.
	// The transport's real window must outlast a Run: Run decides windows
	// with Flush, once every request of a batch has ended.
	Window time.Duration
	// Grace, when not 0, is how long after the last call of a request that
	// the service served ends the transport decides that request's trace,
	// within Window (dedup's decision at request end, which needs the
	// server-side adapter).
	Grace time.Duration
}

// Wiring gives each service its Stack. It is the only place that knows what
// is being evaluated.
type Wiring interface {
	Stack(service string, opts sentry.ClientOptions) Stack
}

// Sent is an event that reached a service's final transport: what Sentry
// would receive.
type Sent struct {
	Service string
	Event   *sentry.Event
	// Truth is the ground truth of the event, nil if it carried none.
	Truth *Event
	// Late is true when it was sent after the trace's other events were
	// decided on.
	Late bool
	// At is when it reached Sentry, in virtual time.
	At time.Duration
}

// Outcome is what one Run sent.
type Outcome struct {
	Plan *Plan
	Sent []Sent
	// Captured counts the events handed to the services' transports.
	Captured int
}

// RunOptions tune a Run.
type RunOptions struct {
	// Workers is how many requests run at once; 0 means 8.
	Workers int
	// Batch is how many requests run between two decisions; 0 means 500.
	Batch int
	// Progress, if not nil, gets a line per batch.
	Progress io.Writer
	// Label names the run in progress lines.
	Label string
}

// Run drives plan through one real Sentry client, TracerProvider and
// otelhttp-wrapped handler per service, as w wires them. Calls between
// services go through http.Clients whose transport calls the callee's
// handler in memory. Requests run in batches; after each batch every client
// is flushed, which ends the windows of its traces, then the batch's late
// events are captured and the clients flushed again.
func Run(ctx context.Context, plan *Plan, w Wiring, opt RunOptions) (*Outcome, error) {
	if opt.Workers <= 0 {
		opt.Workers = 8
	}
	if opt.Batch <= 0 {
		opt.Batch = 500
	}
	d := &driver{plan: plan, nodes: map[int]*Node{}, services: map[string]*service{}, out: &Outcome{Plan: plan},
		first: map[firstKey]time.Duration{}, served: map[servedKey]time.Duration{}}
	for _, r := range plan.Requests {
		d.index(r.Root)
		d.indexServed(r.ID, r.Root)
	}
	defer d.shutdown()
	for _, s := range plan.Graph.Services {
		if err := d.start(s.Name, w); err != nil {
			return nil, err
		}
	}
	for lo := 0; lo < len(plan.Requests); lo += opt.Batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hi := min(lo+opt.Batch, len(plan.Requests))
		d.runBatch(plan.Requests[lo:hi], opt.Workers)
		if err := d.flush(); err != nil {
			return nil, err
		}
		d.late.Store(true)
		for _, l := range d.pending {
			d.captureOne(l.ctx, l.svc, l.ev)
		}
		d.pending = nil
		if err := d.flush(); err != nil {
			return nil, err
		}
		d.late.Store(false)
		if opt.Progress != nil {
			fmt.Fprintf(opt.Progress, "%s: %d/%d requests\n", opt.Label, hi, len(plan.Requests))
		}
	}
	if n := d.mismatches.Load(); n > 0 {
		return nil, fmt.Errorf("workload: %d calls answered other than planned: %s", n, d.mismatch.Load())
	}
	d.out.Captured = int(d.captured.Load())
	return d.out, nil
}

// driver runs one Plan.
type driver struct {
	plan     *Plan
	nodes    map[int]*Node
	services map[string]*service

	late       atomic.Bool // set while late events are captured and sent
	captured   atomic.Int64
	mismatches atomic.Int64
	mismatch   atomic.Value // string: the first mismatch

	mu      sync.Mutex
	out     *Outcome
	first   map[firstKey]time.Duration  // a service's first event of a request, per phase
	pending []lateCapture               // late events of the batch running
	served  map[servedKey]time.Duration // when a service's last call of a request ended
}

type firstKey struct {
	service string
	request int
	late    bool
}

type lateCapture struct {
	ctx context.Context
	svc *service
	ev  *Event
}

// service is one service of the graph, running.
type service struct {
	name    string
	client  *sentry.Client
	tp      *sdktrace.TracerProvider
	tracer  trace.Tracer
	handler http.Handler
	out     *http.Client
	window  time.Duration
	grace   time.Duration
}

// propagator is passed to every otelhttp handler and transport: no OTel
// globals are set, so the services can share one process as they would be
// in several.
var propagator = propagation.TraceContext{}

const nodeHeader = "X-Workload-Node"

func (d *driver) index(n *Node) {
	d.nodes[n.ID] = n
	for _, s := range n.Steps {
		if s.Call != nil {
			d.index(s.Call)
		}
	}
}

func (d *driver) start(name string, w Wiring) error {
	s := &service{name: name}
	opts := sentry.ClientOptions{
		Dsn:        "http://public@tracedup.invalid/1", // never dialled: the transport records
		ServerName: name,
		Transport:  &recorder{d: d, service: s},
		BeforeSend: func(ev *sentry.Event, hint *sentry.EventHint) *sentry.Event {
			d.arrived(s, ev, hint)
			return ev
		},
	}
	stack := w.Stack(name, opts)
	s.window = stack.Window
	s.grace = stack.Grace
	client, err := sentry.NewClient(stack.Options)
	if err != nil {
		return fmt.Errorf("%s: sentry client: %w", name, err)
	}
	s.client = client
	topts := append([]sdktrace.TracerProviderOption{
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithResource(resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(name))),
	}, stack.TracerOptions...)
	s.tp = sdktrace.NewTracerProvider(topts...)
	s.tracer = s.tp.Tracer("workload")
	d.services[name] = s

	var rt http.RoundTripper = memory{d}
	if stack.Client != nil {
		rt = stack.Client(rt)
	}
	s.out = &http.Client{Transport: otelhttp.NewTransport(rt,
		otelhttp.WithTracerProvider(s.tp), otelhttp.WithPropagators(propagator))}

	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { d.serve(s, w, r) })
	h = withHub(h, client)
	if stack.Server != nil {
		h = stack.Server(h)
	}
	s.handler = otelhttp.NewHandler(h, name, otelhttp.WithTracerProvider(s.tp), otelhttp.WithPropagators(propagator))
	return nil
}

// withHub gives each request a hub of its own on the service's client, as
// sentryhttp does.
func withHub(next http.Handler, client *sentry.Client) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hub := sentry.NewHub(client, sentry.NewScope())
		next.ServeHTTP(w, r.WithContext(sentry.SetHubOnContext(r.Context(), hub)))
	})
}

// memory is the RoundTripper under every service's client: it calls the
// callee's handler directly, the host of the URL naming the callee.
type memory struct{ d *driver }

func (m memory) RoundTrip(req *http.Request) (*http.Response, error) {
	s := m.d.services[req.URL.Host]
	if s == nil {
		return nil, fmt.Errorf("workload: no service %q", req.URL.Host)
	}
	// The server side starts from a fresh context, as in another process;
	// only the headers carry the trace across.
	in := req.Clone(context.Background())
	in.RequestURI = req.URL.RequestURI()
	in.RemoteAddr = "192.0.2.1:1234"
	rec := httptest.NewRecorder()
	s.handler.ServeHTTP(rec, in)
	return rec.Result(), nil
}

func (d *driver) runBatch(reqs []*Request, workers int) {
	work := make(chan *Request)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for r := range work {
				status, err := d.call(context.Background(), &http.Client{Transport: memory{d}}, r.Root)
				d.check(r.Root, status, err)
			}
		})
	}
	for _, r := range reqs {
		work <- r
	}
	close(work)
	wg.Wait()
}

// call asks n's service to handle n, with client.
func (d *driver) call(ctx context.Context, client *http.Client, n *Node) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+n.Service+"/handle", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set(nodeHeader, strconv.Itoa(n.ID))
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

func (d *driver) check(n *Node, status int, err error) {
	if err == nil && status == n.Status {
		return
	}
	if d.mismatches.Add(1) == 1 {
		d.mismatch.Store(fmt.Sprintf("node %d at %s: planned %d, got %d (%v)", n.ID, n.Service, n.Status, status, err))
	}
}

// serve is every service's handler: it runs the steps of the node the
// request names and answers the node's status.
func (d *driver) serve(s *service, w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.Atoi(r.Header.Get(nodeHeader))
	n := d.nodes[id]
	if n == nil || n.Service != s.name {
		http.Error(w, "no such node", http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	for _, st := range n.Steps {
		if st.Call != nil {
			status, err := d.call(ctx, s.out, st.Call)
			d.check(st.Call, status, err)
			continue
		}
		d.capture(ctx, s, st.Capture)
	}
	w.WriteHeader(n.Status)
}

// capture captures evs; two or more at once, each in a goroutine on a span
// of its own, as sibling operations of one handler.
func (d *driver) capture(ctx context.Context, s *service, evs []*Event) {
	if len(evs) == 1 {
		d.captureOrDefer(ctx, s, evs[0])
		return
	}
	var wg sync.WaitGroup
	for _, ev := range evs {
		wg.Go(func() {
			ctx, span := s.tracer.Start(ctx, "sibling")
			defer span.End()
			d.captureOrDefer(ctx, s, ev)
		})
	}
	wg.Wait()
}

func (d *driver) captureOrDefer(ctx context.Context, s *service, ev *Event) {
	if ev.Late {
		d.mu.Lock()
		d.pending = append(d.pending, lateCapture{ctx, s, ev})
		d.mu.Unlock()
		return
	}
	d.captureOne(ctx, s, ev)
}

// failure is the error every planned failure is captured as. The driver
// names its exception after Event.Type, as distinct error types would.
type failure struct{ Event *Event }

func (f *failure) Error() string { return f.Event.Message }

func (d *driver) captureOne(ctx context.Context, s *service, ev *Event) {
	if !ev.Traced {
		ctx = sentry.SetHubOnContext(context.Background(), sentry.GetHubFromContext(ctx))
	}
	if ev.Role == Info {
		hub := sentry.GetHubFromContext(ctx)
		hub.Client().CaptureMessage(ev.Message, &sentry.EventHint{Context: ctx, Data: ev}, hub.Scope())
		return
	}
	sentryotel.CaptureException(ctx, &failure{ev})
}

// arrived runs as the last BeforeSend: it puts the ground truth and the
// virtual timestamp on the event, names its exception, and notes when the
// service's transport first saw the request.
func (d *driver) arrived(s *service, ev *sentry.Event, hint *sentry.EventHint) {
	var truth *Event
	var f *failure
	switch {
	case hint == nil:
	case errors.As(hint.OriginalException, &f):
		truth = f.Event
	default:
		truth, _ = hint.Data.(*Event)
	}
	if truth == nil {
		return
	}
	d.captured.Add(1)
	if ev.Contexts == nil {
		ev.Contexts = map[string]sentry.Context{}
	}
	ev.Contexts[ContextKey] = sentry.Context{"event": truth.ID}
	ev.Timestamp = Epoch.Add(truth.At + truth.Skew)
	if n := len(ev.Exception); n > 0 {
		ev.Exception[n-1].Type = truth.Type
	}
	if !truth.Traced || truth.Role == Info {
		return // passes through: opens no window
	}
	k := firstKey{s.name, truth.Request, d.late.Load()}
	d.mu.Lock()
	if t, ok := d.first[k]; !ok || truth.At < t {
		d.first[k] = truth.At
	}
	d.mu.Unlock()
}

// recorder is every service's final transport.
type recorder struct {
	d       *driver
	service *service
}

func (r *recorder) SendEvent(ev *sentry.Event) {
	d := r.d
	late := d.late.Load()
	sent := Sent{Service: r.service.name, Event: ev, Late: late}
	if id, ok := ev.Contexts[ContextKey]["event"].(int); ok && id >= 0 && id < len(d.plan.Events) {
		sent.Truth = d.plan.Events[id]
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	sent.At = d.sentAt(r.service, sent)
	d.out.Sent = append(d.out.Sent, sent)
}

// sentAt is when, in virtual time, a windowed transport sends ev: at the end
// of the window its service opened for the request in this phase. Events
// outside any window (no trace, not an error) go at once, and so do late
// events of a trace the service decided on. Late events of a trace the
// service had not seen share one window, from the first of them. d.mu is
// held.
func (d *driver) sentAt(s *service, sent Sent) time.Duration {
	t := sent.Truth
	if t == nil {
		return 0
	}
	if s.window == 0 || !t.Traced || t.Role == Info {
		return t.At
	}
	if sent.Late {
		if _, decided := d.first[firstKey{s.name, t.Request, false}]; decided {
			return t.At // judged against the decision at once
		}
	}
	first, ok := d.first[firstKey{s.name, t.Request, sent.Late}]
	if !ok {
		first = t.At
	}
	if end, served := d.served[servedKey{s.name, t.Request}]; served && s.grace > 0 && !sent.Late {
		return min(first+s.window, max(end+s.grace, t.At))
	}
	return first + s.window
}

// servedKey names the calls a service served for one request.
type servedKey struct {
	service string
	request int
}

// indexServed notes, for each service and request, when the last call it
// served for the request ended.
func (d *driver) indexServed(req int, n *Node) {
	k := servedKey{n.Service, req}
	if n.End > d.served[k] {
		d.served[k] = n.End
	}
	for _, s := range n.Steps {
		if s.Call != nil {
			d.indexServed(req, s.Call)
		}
	}
}

func (*recorder) Configure(sentry.ClientOptions)        {}
func (*recorder) Flush(time.Duration) bool              { return true }
func (*recorder) FlushWithContext(context.Context) bool { return true }
func (*recorder) Close()                                {}

// flushTimeout bounds a flush: a deadline for a stuck transport, not a
// delay.
const flushTimeout = 30 * time.Second

func (d *driver) flush() error {
	for _, s := range d.services {
		if !s.client.Flush(flushTimeout) {
			return fmt.Errorf("workload: %s: flush timed out", s.name)
		}
	}
	return nil
}

func (d *driver) shutdown() {
	for _, s := range d.services {
		if s.client != nil {
			s.client.Close()
		}
		if s.tp != nil {
			_ = s.tp.Shutdown(context.Background())
		}
	}
}
