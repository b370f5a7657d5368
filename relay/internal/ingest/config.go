package ingest

import "time"

// Relay's default limits (relay-config/src/config.rs, Limits::default) and
// how it applies them to an envelope's items (relay-server/src/utils/sizes.rs,
// check_envelope_size_limits): over any of them, the request is refused
// with 413.
const (
	// DefaultMaxEnvelopeSize bounds an envelope or OTLP body once
	// decompressed (max_envelope_size), and so also as sent.
	DefaultMaxEnvelopeSize = 100 << 20
	// DefaultMaxEventSize bounds the store endpoint's body and the sum of
	// an envelope's event-like items: events, transactions, security
	// reports, replay events, feedback (max_event_size).
	DefaultMaxEventSize = 1 << 20
	// DefaultMaxAttachmentSize bounds one attachment (max_attachment_size).
	DefaultMaxAttachmentSize = 100 << 20
	// DefaultMaxAttachmentsSize bounds an envelope's attachments together
	// (max_attachments_size).
	DefaultMaxAttachmentsSize = 100 << 20
	// DefaultMaxClientReportsSize bounds an envelope's client reports
	// together (max_client_reports_size).
	DefaultMaxClientReportsSize = 4 << 10
	// DefaultMaxProfileSize bounds one profile (max_profile_size).
	DefaultMaxProfileSize = 10 << 20
	// DefaultMaxSessionCount bounds an envelope's session items
	// (max_session_count).
	DefaultMaxSessionCount = 100
	// DefaultRetryAfter is what an SDK is told to wait when the sink is
	// full or the forwarder refuses a body without saying how long.
	DefaultRetryAfter = 2 * time.Second
)

// Option configures the handler of [NewHandler].
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// Limits are the size limits the handler enforces; a zero field keeps its
// default.
type Limits struct {
	MaxEnvelopeSize      int64
	MaxEventSize         int64
	MaxAttachmentSize    int64
	MaxAttachmentsSize   int64
	MaxClientReportsSize int64
	MaxProfileSize       int64
	MaxSessionCount      int
}

type config struct {
	limits      Limits
	maxInFlight int64
	retryAfter  time.Duration
	now         func() time.Time
}

func newConfig(options []Option) config {
	c := config{
		limits: Limits{
			MaxEnvelopeSize:      DefaultMaxEnvelopeSize,
			MaxEventSize:         DefaultMaxEventSize,
			MaxAttachmentSize:    DefaultMaxAttachmentSize,
			MaxAttachmentsSize:   DefaultMaxAttachmentsSize,
			MaxClientReportsSize: DefaultMaxClientReportsSize,
			MaxProfileSize:       DefaultMaxProfileSize,
			MaxSessionCount:      DefaultMaxSessionCount,
		},
		retryAfter: DefaultRetryAfter,
		now:        time.Now,
	}
	for _, o := range options {
		if o != nil {
			o.apply(&c)
		}
	}
	return c
}

// WithMaxInFlight bounds the bytes the bodies of requests in flight hold,
// read and decompressed (twice what was read, for the buffers' growth):
// past it a request is answered 429 with a Retry-After, as when upstream is
// busy. One request alone always has room up to its size limits. Zero or
// less means no bound (the default).
func WithMaxInFlight(n int64) Option {
	return optionFunc(func(c *config) { c.maxInFlight = n })
}

// WithLimits overrides the size limits whose fields are positive.
func WithLimits(l Limits) Option {
	return optionFunc(func(c *config) {
		set := func(dst *int64, v int64) {
			if v > 0 {
				*dst = v
			}
		}
		set(&c.limits.MaxEnvelopeSize, l.MaxEnvelopeSize)
		set(&c.limits.MaxEventSize, l.MaxEventSize)
		set(&c.limits.MaxAttachmentSize, l.MaxAttachmentSize)
		set(&c.limits.MaxAttachmentsSize, l.MaxAttachmentsSize)
		set(&c.limits.MaxClientReportsSize, l.MaxClientReportsSize)
		set(&c.limits.MaxProfileSize, l.MaxProfileSize)
		if l.MaxSessionCount > 0 {
			c.limits.MaxSessionCount = l.MaxSessionCount
		}
	})
}

// WithRetryAfter sets what an SDK is told to wait when the sink is full;
// d <= 0 is ignored.
func WithRetryAfter(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d > 0 {
			c.retryAfter = d
		}
	})
}

// WithNow sets the clock that stamps Request.Received; nil is ignored.
func WithNow(now func() time.Time) Option {
	return optionFunc(func(c *config) {
		if now != nil {
			c.now = now
		}
	})
}
