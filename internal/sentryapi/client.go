package sentryapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults of the client's bounds.
const (
	// DefaultMaxRetries is how many times one request is retried after a 429
	// or a 502/503/504 before the client gives up.
	DefaultMaxRetries = 5
	// DefaultBaseBackoff is the first wait of the exponential backoff used
	// when a 429 carries neither Retry-After nor X-Sentry-Rate-Limit-Reset.
	DefaultBaseBackoff = time.Second
	// DefaultMaxWait caps any single wait, backoff or announced reset alike,
	// so a bogus header cannot stall the client for hours.
	DefaultMaxWait = 2 * time.Minute
	// DefaultMaxPages bounds a paginated read (100 events a page).
	DefaultMaxPages = 10000
	// maxBodyBytes bounds one response body; a page of 100 full events is
	// far below it.
	maxBodyBytes = 64 << 20
)

// Client reads from the Sentry web API. It is safe for concurrent use; it
// sends at most one request at a time to each endpoint, because Sentry limits
// concurrent requests per caller and endpoint (to one on the project events
// endpoint), and it waits out the rate limit Sentry announces.
type Client struct {
	base  *url.URL
	token string
	cfg   config

	mu    sync.Mutex
	gates map[string]*gate
}

// gate serialises the requests to one endpoint and remembers until when that
// endpoint's rate-limit window is spent.
type gate struct {
	sem   chan struct{} // capacity 1: the one request in flight
	until time.Time     // guarded by sem: no request before this
}

// Progress reports a paginated read after each page.
type Progress struct {
	// Endpoint names the read ("projects/acme/web/events").
	Endpoint string
	// Pages is how many pages of this read are done.
	Pages int
	// Events is how many events this read has returned so far.
	Events int
	// Waited is how long the client waited for rate limits during the page.
	Waited time.Duration
	// RateLimitRemaining and ConcurrentRemaining are what Sentry's
	// X-Sentry-Rate-Limit-Remaining and -ConcurrentRemaining headers said
	// of the last page; -1 when absent.
	RateLimitRemaining, ConcurrentRemaining int
}

type config struct {
	httpClient  *http.Client
	sleep       func(ctx context.Context, d time.Duration) error
	now         func() time.Time
	maxRetries  int
	baseBackoff time.Duration
	maxWait     time.Duration
	maxPages    int
	progress    func(Progress)
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

// New returns a client for the Sentry instance at baseURL
// ("https://sentry.io", or a self-hosted or regional URL such as
// "https://de.sentry.io") that authenticates with token as a Bearer token.
// The token is sent only in the Authorization header of requests to baseURL
// and never appears in an error.
func New(baseURL, token string, options ...Option) (*Client, error) {
	if token == "" {
		return nil, errors.New("sentry api: no auth token")
	}
	u, err := url.Parse(strings.TrimSpace(baseURL))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("sentry api: base URL %q: want http(s)://host[/path]", redact(baseURL, token))
	}
	if u.User != nil {
		return nil, errors.New("sentry api: base URL must not carry credentials; use the token")
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	cfg := config{
		httpClient:  &http.Client{Timeout: 60 * time.Second},
		sleep:       sleepCtx,
		now:         time.Now,
		maxRetries:  DefaultMaxRetries,
		baseBackoff: DefaultBaseBackoff,
		maxWait:     DefaultMaxWait,
		maxPages:    DefaultMaxPages,
		progress:    func(Progress) {},
		userAgent:   "tracedup-sentryapi",
	}
	for _, o := range options {
		if o != nil {
			o.apply(&cfg)
		}
	}
	return &Client{base: u, token: token, cfg: cfg, gates: map[string]*gate{}}, nil
}

// sleepCtx waits for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// gateFor returns the gate of an endpoint. endpoint is the route, not the
// URL: Sentry counts its limits per caller and endpoint, whatever the slugs.
func (c *Client) gateFor(endpoint string) *gate {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.gates[endpoint]
	if g == nil {
		g = &gate{sem: make(chan struct{}, 1)}
		c.gates[endpoint] = g
	}
	return g
}

// request is one GET to do.
type request struct {
	endpoint string // route, for the gate: "projects/{org}/{project}/events"
	path     string // "/api/0/projects/acme/web/events/"
	org      string // slugs, for error hints
	project  string
	query    url.Values // without cursor
	cursor   string
	page     int
}

// response is what get returns of a successful request.
type response struct {
	body   []byte
	header http.Header
	waited time.Duration
	limits rateLimit
}

// get sends r, holding the endpoint's gate for the whole exchange including
// any retries, so that there is never more than one request in flight per
// endpoint and a retry does not race other readers into the same limit.
func (c *Client) get(ctx context.Context, r request) (*response, error) {
	g := c.gateFor(r.endpoint)
	select {
	case g.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, c.errorf(r, ErrNetwork, 0, "", ctx.Err())
	}
	defer func() { <-g.sem }()

	var waited time.Duration
	wait := func(d time.Duration) error {
		if d <= 0 {
			return nil
		}
		d = min(d, c.cfg.maxWait)
		waited += d
		return c.cfg.sleep(ctx, d)
	}
	for attempt := 0; ; attempt++ {
		if err := wait(g.until.Sub(c.cfg.now())); err != nil {
			return nil, c.errorf(r, ErrNetwork, 0, "interrupted while waiting for the rate limit to reset", err)
		}
		resp, err := c.send(ctx, r)
		if err != nil {
			hint := "no response from Sentry; check -url and the network"
			if ctx.Err() != nil {
				hint = "interrupted"
			}
			return nil, c.errorf(r, ErrNetwork, 0, hint, err)
		}
		body, readErr := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes+1))
		resp.Body.Close()
		limits := parseRateLimit(resp.Header, c.cfg.now())
		g.until = time.Time{}
		if limits.remainingKnown && limits.remaining <= 0 && !limits.reset.IsZero() {
			g.until = limits.reset // spent: the next request waits for the window
		}
		switch {
		case resp.StatusCode == http.StatusTooManyRequests || transient(resp.StatusCode):
			if attempt >= c.cfg.maxRetries {
				kind := ErrRateLimited
				hint := fmt.Sprintf("still rate limited after %d retries; try again later or narrow -since", attempt)
				if resp.StatusCode != http.StatusTooManyRequests {
					kind, hint = ErrStatus, fmt.Sprintf("Sentry kept failing after %d retries", attempt)
				}
				return nil, c.statusError(r, kind, resp.StatusCode, hint, body)
			}
			d := limits.retryAfter
			if d <= 0 && !limits.reset.IsZero() {
				d = limits.reset.Sub(c.cfg.now())
			}
			if d <= 0 {
				d = backoff(c.cfg.baseBackoff, attempt)
			}
			if err := wait(d); err != nil {
				return nil, c.errorf(r, ErrNetwork, 0, "interrupted while waiting to retry", err)
			}
			continue
		case resp.StatusCode < 200 || resp.StatusCode > 299:
			return nil, c.classify(ctx, r, resp.StatusCode, body)
		}
		if readErr != nil {
			return nil, c.errorf(r, ErrNetwork, resp.StatusCode, "the response was cut short", readErr)
		}
		if len(body) > maxBodyBytes {
			return nil, c.errorf(r, ErrMalformed, resp.StatusCode, fmt.Sprintf("body larger than %d bytes", maxBodyBytes), nil)
		}
		return &response{body: body, header: resp.Header, waited: waited, limits: limits}, nil
	}
}

// send builds and sends one request. The token goes in the header only.
func (c *Client) send(ctx context.Context, r request) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.urlFor(r), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.cfg.userAgent)
	return c.cfg.httpClient.Do(req)
}

func (c *Client) urlFor(r request) string {
	u := *c.base
	u.Path = c.base.Path + r.path
	q := url.Values{}
	for k, v := range r.query {
		q[k] = v
	}
	if r.cursor != "" {
		q.Set("cursor", r.cursor)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// transient reports whether a status is worth retrying.
func transient(status int) bool {
	return status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout
}

// backoff returns base·2^attempt; the caller caps it.
func backoff(base time.Duration, attempt int) time.Duration {
	f := float64(base) * math.Pow(2, float64(attempt))
	if f > float64(math.MaxInt64/2) {
		return math.MaxInt64 / 2
	}
	return time.Duration(f)
}

// rateLimit is what the response headers say of the endpoint's limits.
type rateLimit struct {
	remaining           int
	remainingKnown      bool
	reset               time.Time     // X-Sentry-Rate-Limit-Reset, zero when absent
	concurrentRemaining int           // X-Sentry-Rate-Limit-ConcurrentRemaining, -1 when absent
	retryAfter          time.Duration // Retry-After, 0 when absent
}

// parseRateLimit reads Sentry's rate-limit headers
// (https://docs.sentry.io/api/ratelimits/) and Retry-After. Unparseable
// values count as absent.
func parseRateLimit(h http.Header, now time.Time) rateLimit {
	l := rateLimit{remaining: -1, concurrentRemaining: -1}
	if v, err := strconv.Atoi(strings.TrimSpace(h.Get("X-Sentry-Rate-Limit-Remaining"))); err == nil {
		l.remaining, l.remainingKnown = v, true
	}
	if v, err := strconv.ParseFloat(strings.TrimSpace(h.Get("X-Sentry-Rate-Limit-Reset")), 64); err == nil && v > 0 && v < 1e11 {
		sec, frac := math.Modf(v)
		l.reset = time.Unix(int64(sec), int64(frac*1e9))
	}
	if v, err := strconv.Atoi(strings.TrimSpace(h.Get("X-Sentry-Rate-Limit-ConcurrentRemaining"))); err == nil {
		l.concurrentRemaining = v
	}
	if ra := strings.TrimSpace(h.Get("Retry-After")); ra != "" {
		if v, err := strconv.ParseFloat(ra, 64); err == nil && v > 0 && v < 1e7 {
			l.retryAfter = time.Duration(v * float64(time.Second))
		} else if t, err := http.ParseTime(ra); err == nil {
			l.retryAfter = t.Sub(now)
		}
	}
	return l
}

// classify turns a non-2xx, non-retryable status into an *Error.
func (c *Client) classify(ctx context.Context, r request, status int, body []byte) error {
	switch status {
	case http.StatusUnauthorized:
		return c.statusError(r, ErrUnauthorized, status,
			"SENTRY_AUTH_TOKEN is invalid, expired or revoked; create a token at Settings > Auth Tokens", body)
	case http.StatusForbidden:
		return c.statusError(r, ErrForbidden, status, scopeHint(r.endpoint), body)
	case http.StatusNotFound:
		return c.statusError(r, ErrNotFound, status, c.notFoundHint(ctx, r), body)
	case http.StatusBadRequest:
		return c.statusError(r, ErrStatus, status, "Sentry rejected the query", body)
	}
	return c.statusError(r, ErrStatus, status, "", body)
}

// scopeHint names the scopes an endpoint needs, from Sentry's API reference:
// "List a Project's Error Events" requires project:read (or project:write,
// project:admin); "Query Discover Events in Table Format" is guarded by
// Sentry's OrganizationEventPermission, event:read (or event:write,
// event:admin).
func scopeHint(endpoint string) string {
	switch endpoint {
	case endpointProjectEvents:
		return "the token needs the project:read scope, and its user must be a member of the project's team"
	case endpointOrgEvents:
		return "the token needs the event:read scope (org:read as well if it lists projects), and access to the organisation's projects"
	}
	return "the token lacks a scope this endpoint needs"
}

// notFoundHint says whether the organisation or the project is likely wrong.
// For a project endpoint it asks Sentry whether the organisation exists:
// both a wrong organisation and a wrong project give the same 404.
func (c *Client) notFoundHint(ctx context.Context, r request) string {
	org, project := r.org, r.project
	if r.endpoint != endpointProjectEvents {
		return fmt.Sprintf("organisation %q does not exist or the token cannot see it; check -org (the slug, as in the URL)", org)
	}
	probe := request{endpoint: "organizations/{org}", path: "/api/0/organizations/" + url.PathEscape(org) + "/", org: org}
	if _, err := c.get(ctx, probe); err == nil {
		return fmt.Sprintf("organisation %q exists, so project %q is likely wrong; check -project (the slug, as in the URL)", org, project)
	} else if errors.Is(err, ErrNotFound) {
		return fmt.Sprintf("organisation %q does not exist or the token cannot see it; check -org", org)
	}
	return fmt.Sprintf("organisation %q or project %q does not exist or the token cannot see it; check -org and -project", org, project)
}

// statusError builds the *Error of an HTTP failure, with Sentry's detail.
func (c *Client) statusError(r request, kind error, status int, hint string, body []byte) error {
	e := c.errorf(r, kind, status, hint, nil).(*Error)
	e.Detail = redact(sentryDetail(body), c.token)
	return e
}

// errorf builds an *Error that holds no copy of the token.
func (c *Client) errorf(r request, kind error, status int, hint string, err error) error {
	if err != nil && strings.Contains(err.Error(), c.token) {
		// Never seen in practice; if it happens, the chain is given up for
		// the token's sake.
		err = errors.New(redact(err.Error(), c.token))
	}
	return &Error{
		Kind: kind, Method: http.MethodGet, Path: redact(r.path, c.token), Page: r.page,
		StatusCode: status, Hint: redact(hint, c.token), Err: err,
	}
}

// sentryDetail extracts {"detail": "..."} from an error body, shortened.
func sentryDetail(body []byte) string {
	var v struct {
		Detail json.RawMessage `json:"detail"`
	}
	if json.Unmarshal(body, &v) != nil || len(v.Detail) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(v.Detail, &s) != nil {
		s = string(v.Detail)
	}
	const maxDetail = 200
	if len(s) > maxDetail {
		s = s[:maxDetail] + "…"
	}
	return s
}
