package sentryotel

// Option configures the hook.
type Option interface{ apply(*config) }

type config struct {
	traceFingerprint bool
}

func newConfig(options []Option) config {
	c := config{}
	for _, o := range options {
		if o != nil {
			o.apply(&c)
		}
	}
	return c
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithTraceFingerprint adds the trace id to the event's fingerprint, after
// {{ default }} or the event's own fingerprint. It is off by default, and
// rarely what you want: Sentry keeps its grouping and splits it by trace, so
// every error of every failing request opens an issue of its own (and fires
// its own alert), and a recurring root cause no longer accumulates in one
// issue. It is for teams that want an issue per failed request.
func WithTraceFingerprint() Option {
	return optionFunc(func(c *config) { c.traceFingerprint = true })
}
