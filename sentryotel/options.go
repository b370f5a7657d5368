package sentryotel

// Option configures the hook.
type Option interface{ apply(*config) }

type config struct {
	traceFingerprint bool
}

func newConfig(options []Option) config {
	c := config{traceFingerprint: true}
	for _, o := range options {
		if o != nil {
			o.apply(&c)
		}
	}
	return c
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithoutTraceFingerprint leaves the event's fingerprint as it is. By default
// the hook appends the trace id to it, after {{ default }} or the event's own
// fingerprint. Sentry then keeps its grouping and splits it by trace: every
// error of every failing request opens an issue of its own, and a recurring
// root cause no longer accumulates in one issue (nor fires one alert). With
// the deduplicator (package dedup) only one event per trace is sent anyway:
// use this option there and keep Sentry's own grouping.
func WithoutTraceFingerprint() Option {
	return optionFunc(func(c *config) { c.traceFingerprint = false })
}
