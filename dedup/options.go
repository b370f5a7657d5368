package dedup

import (
	"slices"
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
	// DefaultRequestGrace is how long a trace's window stays open after the
	// last call of the trace that this process served ended (see
	// [Incoming.End]): long enough for an error captured as the call
	// unwinds (a panic recovered by an outer middleware) and short enough
	// that, with the decision and the hand-over, a report follows its
	// request's end within 100 ms.
	DefaultRequestGrace = 50 * time.Millisecond
	// DefaultMaxHeldEvents bounds the count of error events held for a
	// decision: windows hold at most twice it (see [WithMaxHeldEvents]).
	// Their bytes are bounded by WithMaxBytes.
	DefaultMaxHeldEvents = 4096
	// DefaultMaxTraces bounds the traces held at once. The budget of
	// events bounds them already; this is a bound of its own only when set
	// lower.
	DefaultMaxTraces = DefaultMaxHeldEvents
	// DefaultMaxEventsPerTrace is the number of events at which a trace is
	// decided early.
	DefaultMaxEventsPerTrace = 64
	// DefaultMaxQueueSize bounds each of the two queues: the events waiting
	// to be handed to the inner transport, and the late events, of all
	// traces, waiting to be judged. It is sentry-go's HTTPTransport's own queue size: 13 MB
	// each at 13 KB an event.
	DefaultMaxQueueSize = 1000
	// DefaultCloseTimeout bounds Close, as sentry-go's Client.Close bounds
	// its own buffers' shutdown.
	DefaultCloseTimeout = 5 * time.Second
	// DefaultMemory is how long a trace's decision is remembered, to judge
	// its late events.
	DefaultMemory = 5 * time.Minute
	// DefaultMaxRemembered bounds the decisions remembered. Each keeps at
	// most 16 errors' summaries, without their events: a few hundred bytes
	// each; their bytes are bounded by a sixteenth of WithMaxBytes too.
	DefaultMaxRemembered = 10_000
	// DefaultMaxBurst is how many events are handed to the inner transport
	// before it is flushed. sentry-go's HTTPTransport queues 1000 events and
	// drops what does not fit; a burst of 100 leaves room for everything
	// else the client sends.
	DefaultMaxBurst = 100
	// DefaultMaxListed bounds the events listed in an emitted event's
	// "dedup" context. The count in dedup.suppressed is never capped.
	DefaultMaxListed = 50
	// DefaultMaxCalls bounds the calls served at once that the
	// acknowledgement tracks: see [WithMaxCalls].
	DefaultMaxCalls = 65_536
	// DefaultMaxBytes is the memory budget of a Transport, in bytes of
	// heap: see [WithMaxBytes].
	DefaultMaxBytes = 128 << 20
)

// Option configures a Transport. Options given a value out of range (zero or
// negative) are ignored and the default stays.
type Option interface{ apply(*config) }

type config struct {
	window            time.Duration
	strategy          rootcause.Strategy
	maxTraces         int
	maxEventsPerTrace int
	maxHeld           int
	maxQueue          int
	closeTimeout      time.Duration
	grace             time.Duration
	memory            time.Duration
	maxRemembered     int
	maxBurst          int
	maxListed         int
	meterProvider     metric.MeterProvider
	sendCascades      bool
	cascadeTypes      []string
	maxBytes          int64
	maxCalls          int
	// rule is the rule of what follows from what, with the cascade types;
	// splitsByLinks says that the strategy splits incidents by it
	// (rootcause.Split or CascadeTypes, not a Splitter of the user's), so
	// that a repeat of a report sent may be suppressed on arrival.
	rule          rootcause.Rule
	splitsByLinks bool
	fleet         *fleet // nil: the fleet of the client's DSN
	spans         SpanSource
}

func newConfig(options []Option) config {
	c := config{
		window:            DefaultWindow,
		strategy:          rootcause.Default(),
		maxTraces:         DefaultMaxTraces,
		maxEventsPerTrace: DefaultMaxEventsPerTrace,
		maxHeld:           DefaultMaxHeldEvents,
		maxQueue:          DefaultMaxQueueSize,
		closeTimeout:      DefaultCloseTimeout,
		grace:             DefaultRequestGrace,
		memory:            DefaultMemory,
		maxRemembered:     DefaultMaxRemembered,
		maxBurst:          DefaultMaxBurst,
		maxListed:         DefaultMaxListed,
		maxBytes:          DefaultMaxBytes,
		maxCalls:          DefaultMaxCalls,
	}
	for _, o := range options {
		if o != nil {
			o.apply(&c)
		}
	}
	if c.meterProvider == nil {
		c.meterProvider = otel.GetMeterProvider()
	}
	_, splits := c.strategy.(rootcause.Splitter)
	c.splitsByLinks = !splits
	if len(c.cascadeTypes) > 0 && !splits {
		c.strategy = rootcause.CascadeTypes(c.strategy, c.cascadeTypes...)
	}
	c.rule = rootcause.Rule{CascadeTypes: c.cascadeTypes}
	return c
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// positive returns an Option that sets the field of config that field
// points to to v, unless v is zero or negative.
func positive[T int | time.Duration](v T, field func(*config) *T) Option {
	return optionFunc(func(c *config) {
		if v > 0 {
			*field(c) = v
		}
	})
}

// WithWindow sets how long a trace's events are held, from its first event,
// at most: a trace is decided sooner when the last call of it that this
// process serves ends (see [WithRequestGrace]) or when a bound is reached.
func WithWindow(d time.Duration) Option {
	return positive(d, func(c *config) *time.Duration { return &c.window })
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

// WithMaxHeldEvents sets the budget of error events held for a decision,
// with their full *sentry.Event. It is shared evenly by the Transport's 64
// shards, each of which holds at most ceil(n/64) events in windows still
// open and as many again in windows due for a decision, so at most
// 2·64·ceil(n/64) events in all, exactly. A shard past its share decides
// its oldest trace early: a later event of that trace is judged against the
// decision, as a late event is. Only when a shard's windows are all due
// and the decisions do not keep up (a slow strategy) does an event pass
// through undecided, counted in Stats.Overflow.
func WithMaxHeldEvents(n int) Option {
	return positive(n, func(c *config) *int { return &c.maxHeld })
}

// WithMaxTraces bounds the traces held at once. It is shared by the 64
// shards as WithMaxHeldEvents is: each holds at most ceil(n/64) traces, so
// at most 64·ceil(n/64) in all, exactly, whatever the concurrency. A shard
// at its share decides its oldest trace early to open a new one.
func WithMaxTraces(n int) Option {
	return positive(n, func(c *config) *int { return &c.maxTraces })
}

// WithMaxEventsPerTrace sets the number of events at which a trace is
// decided early. Its events that arrive before the decision is made still
// join it, within its shard's share of WithMaxHeldEvents; those after are
// judged as late events.
func WithMaxEventsPerTrace(n int) Option {
	return positive(n, func(c *config) *int { return &c.maxEventsPerTrace })
}

// WithMaxQueueSize bounds each of the Transport's two queues: events waiting
// to be handed to the inner transport (past it they are dropped and counted
// in Stats.QueueFull, as OTel's BatchSpanProcessor drops spans) and late
// events waiting to be judged, with their bodies, counted over all traces
// (past it they are sent undecided, counted in Stats.Overflow: when in
// doubt, send). A trace's late events wait together and are judged in
// chunks of 48, so a storm in one trace costs one strategy call per chunk.
func WithMaxQueueSize(n int) Option {
	return positive(n, func(c *config) *int { return &c.maxQueue })
}

// WithCloseTimeout bounds how long Close waits for pending events to be
// decided and handed to the inner transport. What is not handed over by
// then is counted in Stats.Abandoned.
func WithCloseTimeout(d time.Duration) Option {
	return positive(d, func(c *config) *time.Duration { return &c.closeTimeout })
}

// WithRequestGrace sets how long a trace's window stays open after the last
// call of the trace that this process served ended, for errors captured just
// after it. An adapter (deduphttp, dedupgrpc) ends the call when its handler
// returns: the in-process cascade of that call is then complete, and the
// trace is decided a grace later rather than when its window ends. Errors
// captured outside any served call keep the whole window.
func WithRequestGrace(d time.Duration) Option {
	return positive(d, func(c *config) *time.Duration { return &c.grace })
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
	return positive(n, func(c *config) *int { return &c.maxBurst })
}

// WithMaxListed bounds the suppressed events listed in the emitted event's
// "dedup" context.
func WithMaxListed(n int) Option {
	return positive(n, func(c *config) *int { return &c.maxListed })
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

// WithCascadeTypes restricts what another service's failure explains to
// errors of the given exception types: the types your code wraps a failed
// call in (a gateway's DownstreamError), matched as rootcause.DemoteTypes
// matches them ("DownstreamError" matches "*main.DownstreamError"). It
// applies to downstream acknowledgements and, through
// rootcause.CascadeTypes around the strategy (unless the strategy splits
// incidents itself), to errors of several services that one Transport sees.
// An error of another type captured after a failed call is then not known
// to follow from it, and is deduplicated like any other error of its trace:
// a caller that degraded gracefully and then failed on its own is reported.
// Without it, another service's failure explains errors of every type.
// Errors that dedupgrpc.WithCaptureErrors captures are gRPC status errors:
// name "status.Error" to count a handler that returns its callee's status.
func WithCascadeTypes(types ...string) Option {
	return optionFunc(func(c *config) {
		if len(types) > 0 {
			c.cascadeTypes = slices.Clone(types)
		}
	})
}

// WithMaxBytes sets the memory budget of the Transport in bytes: everything
// it holds (event bodies waiting for a decision, both queues, remembered
// decisions and the acknowledgement's call records) is kept within it, by
// an estimate of each event's heap. It is shared out: 5/8 for windows (half
// of that for windows still open), 1/8 for the queue to the inner
// transport, 1/16 each for late events, remembered decisions and records of
// calls. Past a share the Transport degrades as the package documentation
// says (What is bounded), rather than grow. One event always fits in an
// empty part, however large: with a budget below a few event sizes, events
// pass through rather than wait.
func WithMaxBytes(n int64) Option {
	return optionFunc(func(c *config) {
		if n > 0 {
			c.maxBytes = n
		}
	})
}

// WithMaxCalls bounds the calls served at once (begun by [Transport.Incoming]
// or [Incoming.Begin] and not yet ended) that the acknowledgement tracks,
// and so the memory a call that never ends can hold (a long stream, an
// adapter that forgets End). Past it a new call is not tracked, counted in
// Stats.Untracked: it acknowledges nothing, and its callers report their
// own errors. One trace has at most 64 tracked calls at once.
func WithMaxCalls(n int) Option {
	return positive(n, func(c *config) *int { return &c.maxCalls })
}

// WithFleetKey makes the Transport's fleet the services configured with the
// same key, in place of the services whose Sentry DSN names the same host
// (the same sentry.io organisation, or the same self-hosted Sentry). An
// acknowledgement is then honoured only from a service that holds the key,
// and answered only to one: a MAC secret, for teams whose DSN is public (a
// browser SDK's) or who trust a partner on purpose. Give every service of
// the fleet the same key, at least 16 random bytes. An empty key is ignored;
// the key is copied.
func WithFleetKey(key []byte) Option {
	if len(key) == 0 {
		return optionFunc(func(*config) {})
	}
	f := keyFleet(key)
	return optionFunc(func(c *config) { c.fleet = f })
}
