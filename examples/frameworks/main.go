// Command frameworks runs the shop of issue 16 (gateway -> order -> payment,
// one failing checkout after another) once per way Go teams write services:
// gin with otelgin and sentrygin, echo v4 with otelecho and sentryecho, chi
// with otelhttp's middleware, plain net/http as the control, and the control
// again with the errors logged through sentry-go's slog and logrus
// integrations. Each service has its own tracer provider, Sentry client and
// dedup.Transport, with deduphttp.NewHandler around its router and
// deduphttp.NewTransport under its HTTP client; everything is on loopback and
// the events go to an embedded Sentry-protocol endpoint. It prints, per
// variant, what Sentry received:
//
//	go run ./examples/frameworks                 # every variant, 20 failed checkouts each
//	go run ./examples/frameworks -variant gin    # one of them
//
// The module is apart from the library's so that the frameworks never reach
// the go.mod of github.com/tracedup/tracedup.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"time"

	"github.com/getsentry/sentry-go"
	"go.opentelemetry.io/otel"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/internal/fakesentry"
	"github.com/tracedup/tracedup/sentryotel"
)

// flushTimeout bounds the final flush of a variant's Sentry clients.
const flushTimeout = 30 * time.Second

func main() {
	// The shop passes its propagator to every middleware; a service sets it
	// once for all, as here, and sentryotel warns when nothing is set.
	otel.SetTextMapPropagator(propagator)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole program, so that a test can run it; it returns the exit
// code: 0, 1 on an error, 2 for bad arguments.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("frameworks", flag.ContinueOnError)
	flags.SetOutput(stderr)
	requests := flags.Int("requests", 20, "failed checkouts per variant")
	only := flags.String("variant", "", "run only this variant: gin, gin+slog, echo, chi, net/http, slog or logrus")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *requests < 1 || flags.NArg() > 0 {
		fmt.Fprintln(stderr, "frameworks: want -requests 1 or more and no arguments")
		return 2
	}
	run := variants
	if *only != "" {
		v, ok := variantNamed(*only)
		if !ok {
			fmt.Fprintf(stderr, "frameworks: unknown variant %q\n", *only)
			return 2
		}
		run = []variant{v}
	}
	fake, err := fakesentry.New()
	if err != nil {
		fmt.Fprintln(stderr, "frameworks:", err)
		return 1
	}
	defer fake.Close()
	var rows []outcome
	for i, v := range run {
		project := strconv.Itoa(i + 1)
		res, err := shopRun(ctx, v, fake.ProjectDSN(project), *requests, 0, nil)
		if err != nil {
			fmt.Fprintf(stderr, "frameworks: %s: %v\n", v.name, err)
			return 1
		}
		var events []fakesentry.Event
		for _, ev := range fake.Events() {
			if ev.Project == project {
				events = append(events, ev)
			}
		}
		rows = append(rows, tally(v, res, events))
	}
	printTable(stdout, rows)
	return 0
}

// runResult is what a run of one variant did, read from its side.
type runResult struct {
	traces map[int]string // the trace id of each checkout, by order number
	stats  map[string]dedup.Stats
}

// shopRun deploys v, sends n checkouts that all fail, stops the servers,
// calls settled (if not nil) before anything is flushed, flushes and closes
// every client. window, if not zero, is the dedup window.
func shopRun(ctx context.Context, v variant, dsn string, n int, window time.Duration, settled func(map[string]dedup.Stats)) (*runResult, error) {
	sh, err := deploy(v, dsn, window)
	if err != nil {
		return nil, err
	}
	defer sh.close(context.Background())
	traces, err := sh.drive(ctx, n)
	if err != nil {
		return nil, err
	}
	sh.stop(ctx)
	if settled != nil {
		settled(sh.stats())
	}
	flushCtx, cancel := context.WithTimeout(ctx, flushTimeout)
	defer cancel()
	if !sh.flush(flushCtx) {
		return nil, errors.New("timed out sending the events to Sentry")
	}
	res := &runResult{traces: make(map[int]string, len(traces)), stats: sh.stats()}
	for i, id := range traces {
		res.traces[i] = id.String()
	}
	return res, nil
}

// outcome is one row of the table.
type outcome struct {
	variant   variant
	requests  int
	events    int
	carry     int // events whose trace id is their checkout's
	collapsed int // checkouts that made exactly one event, payment's
	atEnd     uint64
}

// orderNumber finds the checkout an event is about, in its message: every
// error of the shop names it, so an event is told apart without its trace id.
var orderNumber = regexp.MustCompile(`order (\d+):`)

func checkoutOf(ev *sentry.Event) int {
	text := ev.Message
	if n := len(ev.Exception); n > 0 {
		text = ev.Exception[n-1].Value
	}
	m := orderNumber.FindStringSubmatch(text)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// isOrigin reports whether ev is payment's error, the origin of the cascade.
func isOrigin(ev *sentry.Event) bool {
	n := len(ev.Exception)
	return n > 0 && ev.Exception[n-1].Type == "*main.PaymentDeclined"
}

func tally(v variant, res *runResult, events []fakesentry.Event) outcome {
	o := outcome{variant: v, requests: len(res.traces), events: len(events), atEnd: res.stats[payment].RequestEnded}
	perCheckout := map[int][]*sentry.Event{}
	for _, ev := range events {
		i := checkoutOf(ev.Event)
		perCheckout[i] = append(perCheckout[i], ev.Event)
		if id := ev.Event.Tags[sentryotel.TagTraceID]; i > 0 && id == res.traces[i] {
			o.carry++
		}
	}
	for i := range res.traces {
		if evs := perCheckout[i]; len(evs) == 1 && isOrigin(evs[0]) {
			o.collapsed++
		}
	}
	return o
}

func printTable(w io.Writer, rows []outcome) {
	fmt.Fprintln(w, "| variant | events | carry the request's trace id | collapsed | payment's reports decided at request end |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, o := range rows {
		fmt.Fprintf(w, "| %s | %d | %d | %d / %d | %d / %d |\n",
			o.variant.name, o.events, o.carry, o.collapsed, o.requests, o.atEnd, o.requests)
	}
	fmt.Fprintln(w)
	for _, o := range rows {
		fmt.Fprintf(w, "%-9s %s\n", o.variant.name+":", o.variant.description)
	}
}
