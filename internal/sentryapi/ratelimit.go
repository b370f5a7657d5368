package sentryapi

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// rateLimit is what the response headers say of the endpoint's limits.
// Self-hosted Sentry sends none of them; every field then says "absent".
type rateLimit struct {
	remaining           int           // X-Sentry-Rate-Limit-Remaining, -1 when absent
	reset               time.Time     // X-Sentry-Rate-Limit-Reset, zero when absent
	concurrentRemaining int           // X-Sentry-Rate-Limit-ConcurrentRemaining, -1 when absent
	retryAfter          time.Duration // Retry-After, 0 when absent
}

// parseRateLimit reads Sentry's rate-limit headers
// (https://docs.sentry.io/api/ratelimits/) and Retry-After. Unparseable or
// negative values count as absent; it never fails.
func parseRateLimit(h http.Header, now time.Time) rateLimit {
	l := rateLimit{remaining: -1, concurrentRemaining: -1}
	if v, err := strconv.Atoi(strings.TrimSpace(h.Get("X-Sentry-Rate-Limit-Remaining"))); err == nil && v >= 0 {
		l.remaining = v
	}
	// Epoch seconds; the bound keeps the conversion to time exact and
	// rejects milliseconds sent by mistake.
	if v, err := strconv.ParseFloat(strings.TrimSpace(h.Get("X-Sentry-Rate-Limit-Reset")), 64); err == nil && v > 0 && v < 1e11 {
		sec, frac := math.Modf(v)
		l.reset = time.Unix(int64(sec), int64(frac*1e9))
	}
	if v, err := strconv.Atoi(strings.TrimSpace(h.Get("X-Sentry-Rate-Limit-ConcurrentRemaining"))); err == nil && v >= 0 {
		l.concurrentRemaining = v
	}
	if ra := strings.TrimSpace(h.Get("Retry-After")); ra != "" {
		if v, err := strconv.ParseFloat(ra, 64); err == nil && v > 0 && v < 1e7 {
			l.retryAfter = time.Duration(v * float64(time.Second))
		} else if t, err := http.ParseTime(ra); err == nil && t.After(now) {
			l.retryAfter = t.Sub(now)
		}
	}
	return l
}

// spentUntil returns until when the endpoint's window is spent, at most
// maxWait from now, or the zero time when requests may go on at once.
func (l rateLimit) spentUntil(now time.Time, maxWait time.Duration) time.Time {
	if l.remaining != 0 || !l.reset.After(now) {
		return time.Time{}
	}
	return now.Add(min(l.reset.Sub(now), maxWait))
}

// retryDelay returns how long to wait before retrying a 429 or 5xx: what
// Retry-After says, else until the announced reset, else fallback().
func (l rateLimit) retryDelay(now time.Time, fallback func() time.Duration) time.Duration {
	if l.retryAfter > 0 {
		return l.retryAfter
	}
	if l.reset.After(now) {
		return l.reset.Sub(now)
	}
	return fallback()
}

// backoff returns base·2^attempt; the caller caps it.
func backoff(base time.Duration, attempt int) time.Duration {
	f := float64(base) * math.Pow(2, float64(attempt))
	if f > float64(math.MaxInt64/2) {
		return math.MaxInt64 / 2
	}
	return time.Duration(f)
}
