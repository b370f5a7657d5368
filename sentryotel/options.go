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
// the hook adds the trace id to it, so that with the hook alone Sentry groups
// one trace's cascade into one issue. The price is one issue per failing
// request: a recurring root cause no longer accumulates in one issue. With the
// deduplicator (package dedup) only one event per trace is sent anyway, so
// use this option there and keep Sentry's own grouping.
func WithoutTraceFingerprint() Option {
	return optionFunc(func(c *config) { c.traceFingerprint = false })
}
