package dedup

import (
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"

	"github.com/tracedup/tracedup/rootcause"
)

// Defaults of the options.
const (
	// DefaultWindow is how long a trace's events are held after its first.
	// A cascade's errors are captured while its request unwinds: in the
	// time from the deepest failure to the outermost handler's return, well
	// under a second at normal latencies and a few seconds where a client
	// timeout is part of the cascade. Five seconds catches those, and is
	// small beside the minute that Sentry's alert rules count in.
	DefaultWindow = 5 * time.Second
	// DefaultMaxTraces bounds the traces held at once.
	DefaultMaxTraces = 10_000
	// DefaultMaxEventsPerTrace bounds the events held for one trace.
	DefaultMaxEventsPerTrace = 100
	// DefaultMemory is how long a trace's decision is remembered, to judge
	// its late events.
	DefaultMemory = 5 * time.Minute
	// DefaultMaxRemembered bounds the decisions remembered.
	DefaultMaxRemembered = 10_000
	// DefaultMaxBurst is how many events are handed to the inner transport
	// before it is flushed. sentry-go's HTTPTransport queues 1000 events and
	// drops what does not fit; a burst of 100 leaves room for everything
	// else the client sends.
	DefaultMaxBurst = 100
	// DefaultMaxListed bounds the events listed in an emitted event's
	// "dedup" context. The count in dedup.suppressed is never capped.
	DefaultMaxListed = 50
)

// Option configures a Transport. Options given a value out of range (zero or
// negative) are ignored and the default stays.
type Option interface{ apply(*config) }

type config struct {
	window            time.Duration
	strategy          rootcause.Strategy
	maxTraces         int
	maxEventsPerTrace int
	memory            time.Duration
	maxRemembered     int
	maxBurst          int
	maxListed         int
	meterProvider     metric.MeterProvider
	sendCascades      bool
}

func newConfig(options []Option) config {
	c := config{
		window:            DefaultWindow,
		strategy:          rootcause.Default(),
		maxTraces:         DefaultMaxTraces,
		maxEventsPerTrace: DefaultMaxEventsPerTrace,
		memory:            DefaultMemory,
		maxRemembered:     DefaultMaxRemembered,
		maxBurst:          DefaultMaxBurst,
		maxListed:         DefaultMaxListed,
	}
	for _, o := range options {
		if o != nil {
			o.apply(&c)
		}
	}
	if c.meterProvider == nil {
		c.meterProvider = otel.GetMeterProvider()
	}
	return c
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithWindow sets how long a trace's events are held, from its first event.
func WithWindow(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d > 0 {
			c.window = d
		}
	})
}

// WithStrategy sets the strategy that picks a trace's root cause. A nil
// strategy is ignored; the default is rootcause.Default().
func WithStrategy(s rootcause.Strategy) Option {
	return optionFunc(func(c *config) {
		if s != nil {
			c.strategy = s
		}
	})
}

// WithMaxTraces bounds the traces held at once. An event that would open one
// more passes through to the inner transport and is counted in
// Stats.Overflow. The count is read without a lock, so first events of new
// traces arriving together may pass the bound by a few.
func WithMaxTraces(n int) Option {
	return optionFunc(func(c *config) {
		if n > 0 {
			c.maxTraces = n
		}
	})
}

// WithMaxEventsPerTrace bounds the events held for one trace. Further events
// of that trace pass through to the inner transport and are counted in
// Stats.Overflow.
func WithMaxEventsPerTrace(n int) Option {
	return optionFunc(func(c *config) {
		if n > 0 {
			c.maxEventsPerTrace = n
		}
	})
}

// WithMemory sets how long, and for how many traces at most, a trace's
// decision is remembered to judge its late events. Either value may be zero
// to keep its default.
func WithMemory(d time.Duration, maxTraces int) Option {
	return optionFunc(func(c *config) {
		if d > 0 {
			c.memory = d
		}
		if maxTraces > 0 {
			c.maxRemembered = maxTraces
		}
	})
}

// WithMaxBurst sets how many events are handed to the inner transport before
// it is flushed, so that it has sent them before more arrive. For a
// *sentry.HTTPTransport the burst is at most half its BufferSize.
func WithMaxBurst(n int) Option {
	return optionFunc(func(c *config) {
		if n > 0 {
			c.maxBurst = n
		}
	})
}

// WithMaxListed bounds the suppressed events listed in the emitted event's
// "dedup" context.
func WithMaxListed(n int) Option {
	return optionFunc(func(c *config) {
		if n > 0 {
			c.maxListed = n
		}
	})
}

// WithMeterProvider sets the provider of the Transport's metrics. A nil
// provider is ignored; the default is the global provider.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) {
		if mp != nil {
			c.meterProvider = mp
		}
	})
}

// WithSendCascades sends the errors that a downstream acknowledgement
// explains, tagged with TagCascadeOf, instead of suppressing them: for teams
// that want every error in Sentry and alert rules that leave cascades out.
func WithSendCascades() Option {
	return optionFunc(func(c *config) { c.sendCascades = true })
}
