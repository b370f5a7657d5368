package upstream

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// allCategories is the key of a limit that applies to every category: an
// X-Sentry-Rate-Limits entry with no categories, or a bare Retry-After.
const allCategories = ""

// limits holds rate-limit deadlines by category.
type limits map[string]time.Time

// update records the limits an upstream answer carries: X-Sentry-Rate-Limits
// on any answer, else Retry-After (or a minute) for a 429.
func (l limits) update(status int, h http.Header, now time.Time) {
	if v := h.Get("X-Sentry-Rate-Limits"); v != "" {
		l.parseRateLimits(v, now)
		return
	}
	if status == http.StatusTooManyRequests {
		l.extend(allCategories, now.Add(parseRetryAfter(h.Get("Retry-After"), now)))
	}
}

// parseRateLimits reads X-Sentry-Rate-Limits: comma-separated entries of
// retry_after:categories:scope:reason_code:namespaces, where retry_after is
// in seconds (fractions round up) and categories is a ;-separated list,
// empty for every category (Relay's relay-quotas/src/rate_limit.rs;
// sentry-go's internal/ratelimit). Entries it cannot read are skipped.
func (l limits) parseRateLimits(v string, now time.Time) {
	for entry := range strings.SplitSeq(v, ",") {
		fields := strings.Split(strings.TrimSpace(entry), ":")
		secs, err := strconv.ParseFloat(strings.TrimSpace(fields[0]), 64)
		if err != nil || math.IsNaN(secs) {
			continue
		}
		secs = min(math.Ceil(max(secs, 0)), float64(math.MaxInt32))
		deadline := now.Add(time.Duration(secs) * time.Second)
		if len(fields) < 2 || strings.TrimSpace(fields[1]) == "" {
			l.extend(allCategories, deadline)
			continue
		}
		for c := range strings.SplitSeq(fields[1], ";") {
			if c = strings.ToLower(strings.TrimSpace(c)); c != "" {
				l.extend(c, deadline)
			}
		}
	}
}

// extend keeps the later of category's deadline and deadline.
func (l limits) extend(category string, deadline time.Time) {
	if deadline.After(l[category]) {
		l[category] = deadline
	}
}

// wait returns how long category is limited from now: its own limit or
// the one on every category, whichever ends later.
func (l limits) wait(category string, now time.Time) time.Duration {
	deadline := l[allCategories]
	if d := l[category]; d.After(deadline) {
		deadline = d
	}
	return max(deadline.Sub(now), 0)
}

// waitAll returns how long until at least one of categories may be sent:
// the shortest of their waits, or the wait of every category when none is
// given.
func (l limits) waitAll(categories []string, now time.Time) time.Duration {
	if len(categories) == 0 {
		return l.wait(allCategories, now)
	}
	least := time.Duration(math.MaxInt64)
	for _, c := range categories {
		least = min(least, l.wait(c, now))
	}
	return least
}

// prune forgets deadlines already past, so the map stays as small as the
// limits in force.
func (l limits) prune(now time.Time) {
	for c, d := range l {
		if !d.After(now) {
			delete(l, c)
		}
	}
}

// parseRetryAfter reads a Retry-After value, seconds or an HTTP date; a
// missing or unreadable one means a minute, as in sentry-go.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if n, err := strconv.ParseInt(v, 10, 32); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return defaultRateLimit
}
