package main

// This file is the only one that wires tracedup into the evaluation: the
// hook, the deduplicating transport, its strategies and its cross-service
// middleware. The rest of the evaluation sees a workload.Wiring.

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/getsentry/sentry-go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/dedup/deduphttp"
	"github.com/tracedup/tracedup/internal/workload"
	"github.com/tracedup/tracedup/rootcause"
	"github.com/tracedup/tracedup/sentryotel"
)

// strategies are the root-cause strategies evaluated, by name.
var strategies = []struct {
	name string
	new  func() rootcause.Strategy
}{
	{"Default", rootcause.Default}, // Deepest
	{"Earliest", rootcause.Earliest},
	{"NonRootFirst", rootcause.NonRootFirst},
	// One report per trace, as tracedup did before incidents.
	{"OnePerTrace", func() rootcause.Strategy { return rootcause.OnePerTrace(rootcause.Default()) }},
}

// realWindow is dedup's window in real time: longer than any run, so that no
// timer decides anything; the driver decides windows with Flush once a
// batch's requests have ended, and scores them as if they had lasted the
// virtual window.
const realWindow = time.Hour

// hookOnly runs the sentryotel hook alone, which leaves Sentry's grouping as
// it is by default. Services in without run plain sentry-go.
type hookOnly struct{ without map[string]bool }

func (w hookOnly) Stack(service string, opts sentry.ClientOptions) workload.Stack {
	if w.without[service] {
		return workload.Stack{Options: opts}
	}
	return workload.Stack{Options: sentryotel.WrapOptions(opts)}
}

// tracedup runs the hook, sentryotel's span processor and a dedup.Transport
// with the given strategy; with crossService also deduphttp's handler and
// transport. Services in without run plain sentry-go.
type tracedup struct {
	strategy     rootcause.Strategy
	crossService bool
	without      map[string]bool
	window       time.Duration // the virtual window
	// cascadeTypes, when set, are the only types an acknowledgement
	// explains (dedup.WithCascadeTypes).
	cascadeTypes []string
}

func (w tracedup) Stack(service string, opts sentry.ClientOptions) workload.Stack {
	if w.without[service] {
		return workload.Stack{Options: opts}
	}
	t := dedup.NewTransport(opts.Transport, dedup.WithStrategy(w.strategy), dedup.WithWindow(realWindow),
		dedup.WithCascadeTypes(w.cascadeTypes...))
	opts.Transport = t
	st := workload.Stack{
		Options:       sentryotel.WrapOptions(opts),
		TracerOptions: []sdktrace.TracerProviderOption{sdktrace.WithSpanProcessor(sentryotel.NewSpanProcessor())},
		Window:        w.window,
	}
	if w.crossService {
		st.Grace = dedup.DefaultRequestGrace
		st.Server = func(h http.Handler) http.Handler { return deduphttp.NewHandler(h, t) }
		st.Client = func(rt http.RoundTripper) http.RoundTripper { return deduphttp.NewTransport(rt, t) }
	}
	return st
}

// oneProcess runs every service on one dedup.Transport, as the modules of
// one process (or a relay in front of Sentry) would share it: the span
// processor links the whole cascade, so the deduplicator itself sees which
// error caused which, across services, and the strategy names each
// incident's root cause among errors of several services. It needs no
// cross-service adapters.
type oneProcess struct {
	strategy     rootcause.Strategy
	window       time.Duration // the virtual window
	cascadeTypes []string      // dedup.WithCascadeTypes

	mu     sync.Mutex
	shared *dedup.Transport
	demux  demux
}

func (w *oneProcess) Stack(service string, opts sentry.ClientOptions) workload.Stack {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.shared == nil {
		w.demux = demux{}
		w.shared = dedup.NewTransport(w.demux, dedup.WithStrategy(w.strategy), dedup.WithWindow(realWindow),
			dedup.WithCascadeTypes(w.cascadeTypes...))
	}
	w.demux[service] = opts.Transport
	opts.Transport = w.shared
	return workload.Stack{
		Options:       sentryotel.WrapOptions(opts),
		TracerOptions: []sdktrace.TracerProviderOption{sdktrace.WithSpanProcessor(sentryotel.NewSpanProcessor())},
		Window:        w.window,
	}
}

// demux hands each event to the transport of the service that captured it
// (its ServerName), so the evaluation still knows who sent what. Services
// are added before any event is sent and never after.
type demux map[string]sentry.Transport

func (d demux) SendEvent(ev *sentry.Event) {
	if t, ok := d[ev.ServerName]; ok {
		t.SendEvent(ev)
	}
}

func (d demux) Flush(timeout time.Duration) bool { return true }

func (d demux) FlushWithContext(context.Context) bool { return true }

func (d demux) Configure(sentry.ClientOptions) {}

func (d demux) Close() {}
