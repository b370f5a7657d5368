package sentryapi

import (
	"context"
	"net/http"
	"time"
)

type config struct {
	httpClient  *http.Client
	sleep       func(ctx context.Context, d time.Duration) error
	now         func() time.Time
	maxRetries  int
	baseBackoff time.Duration
	maxWait     time.Duration
	maxPages    int
	progress    func(Progress)
	notice      func(string)
	userAgent   string
}

// Option configures a Client.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithHTTPClient sets the HTTP client (default: one with a 60 s timeout).
// A nil client is ignored.
func WithHTTPClient(c *http.Client) Option {
	return optionFunc(func(cfg *config) {
		if c != nil {
			cfg.httpClient = c
		}
	})
}

// WithSleep sets how the client waits for rate limits and backoff. sleep must
// return ctx.Err() if ctx ends first. Tests pass a function that records the
// wait and returns at once. A nil function is ignored.
func WithSleep(sleep func(ctx context.Context, d time.Duration) error) Option {
	return optionFunc(func(cfg *config) {
		if sleep != nil {
			cfg.sleep = sleep
		}
	})
}

// WithClock sets the clock that rate-limit resets (epoch seconds) are measured
// against. A nil function is ignored.
func WithClock(now func() time.Time) Option {
	return optionFunc(func(cfg *config) {
		if now != nil {
			cfg.now = now
		}
	})
}

// WithMaxRetries sets how often one request is retried after a 429 or a
// transient 5xx. Negative values are ignored; 0 means never retry.
func WithMaxRetries(n int) Option {
	return optionFunc(func(cfg *config) {
		if n >= 0 {
			cfg.maxRetries = n
		}
	})
}

// WithBackoff sets the first backoff wait and the cap on any single wait.
// Non-positive values are ignored.
func WithBackoff(base, maxWait time.Duration) Option {
	return optionFunc(func(cfg *config) {
		if base > 0 {
			cfg.baseBackoff = base
		}
		if maxWait > 0 {
			cfg.maxWait = maxWait
		}
	})
}

// WithMaxPages bounds how many pages one read follows. Non-positive values
// are ignored.
func WithMaxPages(n int) Option {
	return optionFunc(func(cfg *config) {
		if n > 0 {
			cfg.maxPages = n
		}
	})
}

// WithProgress sets a function called after each page of a read, from the
// goroutine doing the read. A nil function is ignored.
func WithProgress(f func(Progress)) Option {
	return optionFunc(func(cfg *config) {
		if f != nil {
			cfg.progress = f
		}
	})
}

// WithUserAgent sets the User-Agent header. An empty string is ignored.
func WithUserAgent(ua string) Option {
	return optionFunc(func(cfg *config) {
		if ua != "" {
			cfg.userAgent = ua
		}
	})
}

// WithNotice sets a function told, in a sentence, when a read changes course
// (a fallback to reading project by project) or cannot see what the report
// needs (trace ids of events without tracedup's tags). It is called from the
// goroutine doing the read. A nil function is ignored.
func WithNotice(f func(msg string)) Option {
	return optionFunc(func(cfg *config) {
		if f != nil {
			cfg.notice = f
		}
	})
}
