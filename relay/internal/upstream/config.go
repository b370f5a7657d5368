package upstream

import (
	"context"
	"net/http"
	"time"
)

const (
	// DefaultMaxQueuedBytes bounds the bytes of envelopes waiting to be
	// sent or being sent: room for one envelope of Relay's largest size
	// (100 MiB) and more.
	DefaultMaxQueuedBytes = 128 << 20
	// DefaultWorkers is how many requests to the upstream run at once.
	DefaultWorkers = 4
	// DefaultMaxAttempts bounds the tries of one envelope that meets
	// network errors or 5xx answers, the first try included.
	DefaultMaxAttempts = 5
	// DefaultMinBackoff is the wait before the first retry; it doubles
	// with each retry up to DefaultMaxBackoff.
	DefaultMinBackoff = 500 * time.Millisecond
	// DefaultMaxBackoff caps the wait between tries, an upstream's
	// Retry-After included (Relay's http.max_retry_interval is 60 s).
	DefaultMaxBackoff = 60 * time.Second
	// DefaultBusyRetryAfter is what SDKs are told to wait while the queue
	// is more than three quarters full.
	DefaultBusyRetryAfter = 2 * time.Second
	// DefaultTimeout bounds one request to the upstream (Relay's
	// http.timeout is 5 s; large envelopes need longer).
	DefaultTimeout = 30 * time.Second
	// defaultRateLimit is how long a 429 without a usable Retry-After or
	// X-Sentry-Rate-Limits holds, as sentry-go assumes.
	defaultRateLimit = time.Minute
)

// Clock is the client's time: rate-limit deadlines read Now, and the
// backoff between tries calls Sleep. Tests give their own.
type Clock interface {
	Now() time.Time
	// Sleep waits for d or until ctx is done; it reports whether d passed.
	Sleep(ctx context.Context, d time.Duration) bool
}

// Option configures a [Client].
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	maxQueuedBytes int64
	workers        int
	client         *http.Client
	maxAttempts    int
	minBackoff     time.Duration
	maxBackoff     time.Duration
	busyRetryAfter time.Duration
	clock          Clock
}

func newConfig(options []Option) config {
	c := config{
		maxQueuedBytes: DefaultMaxQueuedBytes,
		workers:        DefaultWorkers,
		client:         &http.Client{Timeout: DefaultTimeout},
		maxAttempts:    DefaultMaxAttempts,
		minBackoff:     DefaultMinBackoff,
		maxBackoff:     DefaultMaxBackoff,
		busyRetryAfter: DefaultBusyRetryAfter,
		clock:          realClock{},
	}
	for _, o := range options {
		if o != nil {
			o.apply(&c)
		}
	}
	return c
}

// WithMaxQueuedBytes bounds the bytes of envelopes queued or being sent;
// n <= 0 is ignored.
func WithMaxQueuedBytes(n int64) Option {
	return optionFunc(func(c *config) {
		if n > 0 {
			c.maxQueuedBytes = n
		}
	})
}

// WithWorkers sets how many requests to the upstream run at once; n <= 0
// is ignored.
func WithWorkers(n int) Option {
	return optionFunc(func(c *config) {
		if n > 0 {
			c.workers = n
		}
	})
}

// WithHTTPClient sets the client that sends to the upstream; nil is
// ignored. Its Timeout should bound a request.
func WithHTTPClient(client *http.Client) Option {
	return optionFunc(func(c *config) {
		if client != nil {
			c.client = client
		}
	})
}

// WithRetry sets the tries of one envelope (the first included) and the
// backoff between them: min before the first retry, doubling up to max.
// Values <= 0 keep their defaults.
func WithRetry(attempts int, min, max time.Duration) Option {
	return optionFunc(func(c *config) {
		if attempts > 0 {
			c.maxAttempts = attempts
		}
		if min > 0 {
			c.minBackoff = min
		}
		if max > 0 {
			c.maxBackoff = max
		}
	})
}

// WithBusyRetryAfter sets what SDKs are told to wait while the queue is
// more than three quarters full; d <= 0 is ignored.
func WithBusyRetryAfter(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d > 0 {
			c.busyRetryAfter = d
		}
	})
}

// WithClock sets the client's clock; nil is ignored.
func WithClock(clock Clock) Option {
	return optionFunc(func(c *config) {
		if clock != nil {
			c.clock = clock
		}
	})
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
