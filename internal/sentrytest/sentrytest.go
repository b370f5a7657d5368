// Package sentrytest has test doubles for sentry-go shared by the packages'
// tests: an in-memory transport and a tracer provider with a service name.
package sentrytest

import (
	"context"
	"sync"
	"time"

	"github.com/getsentry/sentry-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Transport is a sentry.Transport that keeps what it is sent, in order, and
// counts the calls made to it. It is safe for concurrent use.
type Transport struct {
	mu         sync.Mutex
	events     []*sentry.Event
	flushes    int
	closes     int
	configured int
	arrived    chan struct{} // closed and replaced on every SendEvent
}

var _ sentry.Transport = (*Transport)(nil)

// NewTransport returns an empty Transport.
func NewTransport() *Transport { return &Transport{arrived: make(chan struct{})} }

// SendEvent records event.
func (t *Transport) SendEvent(event *sentry.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.events = append(t.events, event)
	close(t.arrived)
	t.arrived = make(chan struct{})
}

// Flush counts the call and returns true.
func (t *Transport) Flush(time.Duration) bool { return t.FlushWithContext(context.Background()) }

// FlushWithContext counts the call and returns true.
func (t *Transport) FlushWithContext(context.Context) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.flushes++
	return true
}

// Configure counts the call.
func (t *Transport) Configure(sentry.ClientOptions) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.configured++
}

// Close counts the call.
func (t *Transport) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closes++
}

// Events returns a copy of the events sent so far.
func (t *Transport) Events() []*sentry.Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]*sentry.Event(nil), t.events...)
}

// Calls returns how often Configure, Flush (either form) and Close were called.
func (t *Transport) Calls() (configured, flushes, closes int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.configured, t.flushes, t.closes
}

// WaitFor blocks until at least n events were sent or ctx ends, and returns
// the events sent so far.
func (t *Transport) WaitFor(ctx context.Context, n int) ([]*sentry.Event, error) {
	for {
		t.mu.Lock()
		if len(t.events) >= n {
			ev := append([]*sentry.Event(nil), t.events...)
			t.mu.Unlock()
			return ev, nil
		}
		arrived := t.arrived
		t.mu.Unlock()
		select {
		case <-arrived:
		case <-ctx.Done():
			return t.Events(), ctx.Err()
		}
	}
}

// TracerProvider returns an SDK tracer provider that samples every span and
// whose resource has the given service.name. Callers shut it down.
func TracerProvider(service string) *sdktrace.TracerProvider {
	return sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", service))),
	)
}

// Discard is a sentry.Transport that does nothing, for benchmarks that
// measure what comes before the transport.
type Discard struct{}

var _ sentry.Transport = Discard{}

// Flush returns true.
func (Discard) Flush(time.Duration) bool { return true }

// FlushWithContext returns true.
func (Discard) FlushWithContext(context.Context) bool { return true }

// Configure does nothing.
func (Discard) Configure(sentry.ClientOptions) {}

// SendEvent drops event.
func (Discard) SendEvent(*sentry.Event) {}

// Close does nothing.
func (Discard) Close() {}
