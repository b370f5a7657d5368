// Command cascade is tracedup's main demo: one declined card, three services,
// and how many Sentry events and issues that makes with and without tracedup.
//
// A gateway calls an order service, which calls a payment service: three
// servers on loopback (HTTP, or gRPC with -protocol), each with its own
// OpenTelemetry tracer provider (its own service.name) and its own Sentry
// client, with the W3C trace context propagated between them by otelhttp. When payment declines a card
// it reports *main.PaymentDeclined and answers 402; order, seeing that,
// reports *main.ServiceCallFailed and answers 502; the gateway reports
// *main.DownstreamError. One failed request, three reports.
//
// The baseline runs tracedup's hook alone (sentryotel.WrapOptions, which
// stamps trace ids and leaves Sentry's grouping alone). The tracedup run adds a dedup.Transport to
// each client and the cross-service protocol: payment's response tells order,
// in the Tracedup-Reported header, that it reported the error, so order's
// error is a cascade and is suppressed; order tells the gateway the same.
// Sentry receives one event per failed request: the payment error. With
// -protocol grpc the services speak gRPC (otelgrpc, and dedupgrpc's
// interceptors carry the acknowledgement in the tracedup-reported trailer);
// with -protocol mixed the gateway serves HTTP and calls order over gRPC.
//
//	go run ./examples/cascade                             # both side by side, embedded fake Sentry
//	go run ./examples/cascade -requests 1000 -fail 0.3    # the README's table
//	go run ./examples/cascade -no-ack payment             # payment not upgraded: order reports too
//	go run ./examples/cascade -monolith -mode tracedup    # one process, one client, plain dedup
//	go run ./examples/cascade -send-cascades -v           # cascades sent, tagged dedup.cascade_of
//	go run ./examples/cascade -protocol grpc              # the services call each other over gRPC
//	go run ./examples/cascade -protocol mixed             # HTTP into the gateway, gRPC behind it
//	go run ./examples/cascade -mode tracedup -dsn "$DSN"  # send to your Sentry project
//
// The run is deterministic in its counts: -seed picks which requests fail,
// and every count in the table follows from that. Progress goes to stderr
// for runs of 500 requests or more, or with -v.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/internal/fakesentry"
)

const (
	// requestTimeout bounds one request between services, and the driver's.
	requestTimeout = 10 * time.Second
	// flushTimeout bounds the final flush of the Sentry clients.
	flushTimeout = 30 * time.Second
	// defaultWindow is the demo's dedup window; see the -window flag.
	defaultWindow = 200 * time.Millisecond
)

// errUnexpectedStatus reports an answer the demo's services never give.
var errUnexpectedStatus = errors.New("unexpected status")

func main() {
	// The services get their propagator explicitly, so that three can
	// share one process as they would be in three; the global one is set
	// too, as a service's main would.
	otel.SetTextMapPropagator(propagation.TraceContext{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the command line's.
type options struct {
	requests     int
	fail         float64
	dsn          string
	modes        []mode
	seed         uint64
	window       time.Duration
	sendCascades bool
	monolith     bool
	noAck        map[string]bool
	protocol     protocol
	workers      int
	verbose      bool
	// relay sends the tracedup column through a tracedup-relay in this
	// process instead of a deduplicator in each service.
	relay bool
}

// run is the whole program, so that a test can run it; it returns the exit
// code: 0, 1 on an error, 2 for bad arguments.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "cascade:", err)
		return 2
	}
	cols, remote, err := demo(ctx, o, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "cascade:", err)
		return 1
	}
	printTable(stdout, cols, remote)
	if o.verbose {
		printDetails(stdout, cols)
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	flags := flag.NewFlagSet("cascade", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() {
		fmt.Fprint(stderr, "Usage: cascade [flags]\n\n"+
			"Sends checkout requests through gateway -> order -> payment, where payment declines\n"+
			"a fraction of the cards, and prints what Sentry receives with the stamping hook alone and with tracedup.\n\n")
		flags.PrintDefaults()
	}
	flags.IntVar(&o.requests, "requests", 100, "number of checkout requests to send to the gateway")
	flags.Float64Var(&o.fail, "fail", 0.3, "fraction of requests whose card payment declines (0..1)")
	flags.StringVar(&o.dsn, "dsn", "", "Sentry DSN to send to (default: an embedded Sentry-protocol endpoint on loopback)")
	modeFlag := flags.String("mode", "both", "both, baseline or tracedup")
	flags.Uint64Var(&o.seed, "seed", 1, "seed that picks which requests fail: the same seed, the same run")
	flags.DurationVar(&o.window, "window", defaultWindow,
		"dedup window: how long a trace's events are held before its root cause is sent.\n"+
			"On loopback a cascade unwinds in milliseconds, so 200ms is ample and root causes\n"+
			"reach Sentry during the run; in production keep dedup's default (5s), which allows\n"+
			"for slow calls and timeouts")
	flags.BoolVar(&o.sendCascades, "send-cascades", false, "send cascades tagged dedup.cascade_of instead of suppressing them")
	flags.BoolVar(&o.monolith, "monolith", false, "run the three services on one Sentry client with one plain dedup transport\n(a modular monolith: no cross-service protocol needed)")
	noAck := flags.String("no-ack", "", "comma-separated services whose server does not answer with the Tracedup-Reported\nheader, as a service not upgraded yet: their callers then report too")
	protocolFlag := flags.String("protocol", string(protocolHTTP), "how the services call each other: http, grpc (gateway, order and payment\nall over gRPC), or mixed (HTTP into the gateway, gRPC behind it)")
	flags.IntVar(&o.workers, "workers", 8, "requests in flight at once")
	flags.BoolVar(&o.verbose, "v", false, "also print each service's dedup stats and the issues")
	flags.BoolVar(&o.relay, "relay", false, "the services run no deduplicator: they send their errors (by their DSN) and spans\n(by OTLP) to a tracedup-relay in this process, which forwards one event per incident")
	if err := flags.Parse(args); err != nil {
		return o, err
	}
	if flags.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", flags.Args())
	}
	switch *modeFlag {
	case "both":
		o.modes = []mode{baseline, tracedup}
	case string(baseline), string(tracedup):
		o.modes = []mode{mode(*modeFlag)}
	default:
		return o, fmt.Errorf("-mode %q: want both, baseline or tracedup", *modeFlag)
	}
	switch o.protocol = protocol(*protocolFlag); o.protocol {
	case protocolHTTP, protocolGRPC, protocolMixed:
	default:
		return o, fmt.Errorf("-protocol %q: want http, grpc or mixed", *protocolFlag)
	}
	switch {
	case o.requests < 0:
		return o, fmt.Errorf("-requests %d: want 0 or more", o.requests)
	case !(o.fail >= 0 && o.fail <= 1):
		return o, fmt.Errorf("-fail %v: want a fraction from 0 to 1", o.fail)
	case o.window <= 0:
		return o, fmt.Errorf("-window %s: want a positive duration", o.window)
	case o.workers < 1:
		return o, fmt.Errorf("-workers %d: want 1 or more", o.workers)
	}
	if o.relay {
		if o.monolith || len(*noAck) > 0 || o.sendCascades || o.protocol != protocolHTTP {
			return o, errors.New("-relay: the services run no deduplicator; -monolith, -no-ack, -send-cascades and -protocol do not apply")
		}
		for i, m := range o.modes {
			if m == tracedup {
				o.modes[i] = viaRelay
			}
		}
	}
	o.noAck = map[string]bool{}
	for name := range strings.SplitSeq(*noAck, ",") {
		switch name = strings.TrimSpace(name); name {
		case "":
		case gateway, order, payment:
			o.noAck[name] = true
		default:
			return o, fmt.Errorf("-no-ack: unknown service %q (want gateway, order or payment)", name)
		}
	}
	return o, nil
}

// demo runs each mode in turn and returns a column of the table per mode,
// and whether events went to a real Sentry, which cannot be read back.
func demo(ctx context.Context, o options, stderr io.Writer) ([]column, bool, error) {
	// Without a DSN, send to a Sentry-protocol endpoint in this process, so
	// that nobody needs a Sentry account, and each mode to a project of its
	// own, so that the two columns count their own events.
	var fake *fakesentry.Server
	if o.dsn == "" {
		var err error
		if fake, err = fakesentry.New(); err != nil {
			return nil, false, err
		}
		defer fake.Close()
	}
	load := plan(o.requests, o.fail, o.seed)
	var cols []column
	for i, m := range o.modes {
		topo := topology{
			mode: m, dsn: o.dsn, window: o.window, sendCascades: o.sendCascades,
			monolith: o.monolith, noAck: o.noAck, protocol: o.protocol,
		}
		project := fmt.Sprint(i + 1)
		if fake != nil {
			topo.dsn = fake.ProjectDSN(project)
		}
		if m == viaRelay {
			r, err := startRelay(topo.dsn, o.window)
			if err != nil {
				return nil, false, err
			}
			defer r.stop()
			topo.dsn, topo.otlp, topo.relay = r.dsn, r.otlp, r.server
		}
		var progress io.Writer
		if o.requests >= 500 || o.verbose {
			progress = stderr
		}
		res, err := simulate(ctx, topo, load, o.workers, progress)
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", m, err)
		}
		col := res.column()
		if fake != nil {
			var events []fakesentry.Event
			for _, ev := range fake.Events() {
				if ev.Project == project {
					events = append(events, ev)
				}
			}
			col.receive(events)
		}
		cols = append(cols, col)
	}
	return cols, fake == nil, nil
}

// plan returns the load: n checkouts, of which round(n*fail) pay with the
// declined card. Which ones is drawn from seed, so a run is repeatable and
// the failures are spread over the run rather than bunched at its start.
func plan(n int, fail float64, seed uint64) []checkout {
	load := make([]checkout, n)
	for i := range load {
		load[i] = checkout{Order: i + 1, Card: cardOK}
	}
	failing := int(math.Round(float64(n) * fail))
	rng := rand.New(rand.NewPCG(seed, 0x7ace_d0b5))
	for _, i := range rng.Perm(n)[:failing] {
		load[i].Card = cardDeclined
	}
	return load
}

// result is what one run of a topology did, read from the client side.
type result struct {
	mode     mode
	requests int
	failed   int // requests the gateway answered with an error
	// captured is per Sentry client: events handed to its transport.
	captured map[string]uint64
	// stats is per Sentry client, in tracedup mode.
	stats map[string]dedup.Stats
	order []string // the clients' names, from the edge inwards
}

// simulate deploys topo, sends the load to its gateway from workers
// goroutines, flushes every Sentry client and shuts everything down. Progress
// goes to progress, if not nil, every 10% of the load.
func simulate(ctx context.Context, topo topology, load []checkout, workers int, progress io.Writer) (*result, error) {
	d, err := deploy(topo)
	if err != nil {
		return nil, err
	}
	defer d.shutdown(context.Background())

	send, closeLoad, err := d.loadClient(workers)
	if err != nil {
		return nil, err
	}
	failed, err := drive(ctx, send, load, workers, func(done int) {
		if progress != nil && len(load) >= 10 && done%(len(load)/10) == 0 {
			fmt.Fprintf(progress, "%s: %d/%d requests\n", topo.mode, done, len(load))
		}
	})
	closeLoad()
	if err != nil {
		return nil, err
	}
	flushCtx, cancel := context.WithTimeout(ctx, flushTimeout)
	defer cancel()
	if !d.flush(flushCtx) {
		return nil, errors.New("timed out sending the events to Sentry")
	}
	res := &result{
		mode:     topo.mode,
		requests: len(load),
		failed:   failed,
		captured: map[string]uint64{},
		stats:    map[string]dedup.Stats{},
	}
	for _, r := range slices.Backward(d.reporters) {
		res.order = append(res.order, r.name)
		res.captured[r.name] = r.captured.Load()
		if r.dedup != nil {
			res.stats[r.name] = r.dedup.Stats()
		}
	}
	if topo.relay != nil {
		res.order = append(res.order, "relay")
		res.stats["relay"] = topo.relay.Stats().Relay.Dedup
	}
	return res, nil
}

// drive sends every checkout of load to the gateway with send, workers at
// a time, and returns how many the gateway failed. done is called after each
// request with the number done so far, one call at a time.
func drive(ctx context.Context, send sender, load []checkout, workers int, done func(int)) (failed int, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan checkout)
	var (
		mu       sync.Mutex
		finished int
		firstErr error
		wg       sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for c := range jobs {
				declined, err := send(ctx, c)
				mu.Lock()
				switch {
				case err != nil:
					if firstErr == nil {
						firstErr = fmt.Errorf("order %d: %w", c.Order, err)
						cancel()
					}
				case declined:
					failed++
				}
				finished++
				done(finished)
				mu.Unlock()
			}
		})
	}
feed:
	for _, c := range load {
		select {
		case jobs <- c:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return failed, firstErr
}

// sender sends one checkout to the gateway and says whether the gateway
// failed it as the demo's gateway fails a request (502, or Unavailable over
// gRPC); any other failure is an error.
type sender func(ctx context.Context, c checkout) (failed bool, err error)

// loadClient returns the load generator's sender for d's gateway and a
// function that closes its connections. The load generator is a plain client,
// like a browser: it has no tracer, so the gateway's span is the root of each
// trace.
func (d *deployment) loadClient(workers int) (sender, func(), error) {
	gw := d.services[len(d.services)-1]
	if gw.protocol == protocolGRPC {
		conn, err := dialJSON(gw.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, nil, err
		}
		method := fullMethod(gateway)
		send := func(ctx context.Context, c checkout) (bool, error) {
			ctx, cancel := context.WithTimeout(ctx, requestTimeout)
			defer cancel()
			err := conn.Invoke(ctx, method, &c, new(reply))
			if status.Code(err) == codes.Unavailable {
				return true, nil
			}
			return false, err
		}
		return send, func() { _ = conn.Close() }, nil
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = workers
	client := &http.Client{Transport: tr, Timeout: requestTimeout}
	url := "http://" + gw.addr + httpPath[gateway]
	send := func(ctx context.Context, c checkout) (bool, error) {
		code, err := postJSON(ctx, client, url, c)
		switch {
		case err != nil:
			return false, err
		case code == http.StatusBadGateway:
			return true, nil
		case code != http.StatusOK:
			return false, fmt.Errorf("%w %d", errUnexpectedStatus, code)
		}
		return false, nil
	}
	return send, tr.CloseIdleConnections, nil
}
