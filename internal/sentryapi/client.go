package sentryapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
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
	// when a 429 carries neither Retry-After nor X-Sentry-Rate-Limit-Reset
	// (self-hosted Sentry sends no rate-limit headers).
	DefaultBaseBackoff = time.Second
	// DefaultMaxWait caps any single wait, backoff or announced reset alike,
	// so a bogus header cannot stall the client for hours.
	DefaultMaxWait = 2 * time.Minute
	// DefaultMaxPages bounds one paginated read. Discover and the plain event
	// list return 100 events a page, so the bound is a million events; full
	// events come 10 a page (Sentry caps full=true pages), so a hundred
	// thousand, which at Sentry's 60 requests a minute takes about three
	// hours to read.
	DefaultMaxPages = 10000
	// maxBodyBytes bounds one response body; a page of full events is far
	// below it.
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
	// Read says how the read finds trace ids ("Discover, trace ids from its
	// trace column").
	Read string
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

// New returns a client for the Sentry instance at baseURL
// ("https://sentry.io", or a self-hosted or regional URL such as
// "https://de.sentry.io") that authenticates with token as a Bearer token.
// The token is sent only in the Authorization header of requests to baseURL's
// scheme, host and port, also across redirects, and never appears in an
// error.
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
		notice:      func(string) {},
		userAgent:   "tracedup-sentryapi",
	}
	for _, o := range options {
		if o != nil {
			o.apply(&cfg)
		}
	}
	cfg.httpClient = guardRedirects(cfg.httpClient, u)
	return &Client{base: u, token: token, cfg: cfg, gates: map[string]*gate{}}, nil
}

// guardRedirects returns a copy of hc that drops the Authorization header
// from a redirect that leaves base's origin. net/http drops it only when the
// host name changes, and keeps it on a redirect to the same host on another
// port or scheme: a plain-http listener on the same host would get the token.
// The user's own CheckRedirect still runs after.
func guardRedirects(hc *http.Client, base *url.URL) *http.Client {
	c := *hc
	next := hc.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if origin(req.URL) != origin(base) {
			req.Header.Del("Authorization")
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 { // net/http's default policy
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &c
}

// origin is scheme://host:port with the scheme's default port made explicit.
func origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
	}
	return strings.ToLower(u.Scheme) + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
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
//
// Every wait, for a spent window or before a retry, is taken in one place at
// the top of the loop, until the gate's time: a retry's delay and the window
// Sentry announced are the same wait, not two.
func (c *Client) get(ctx context.Context, r request) (*response, error) {
	g := c.gateFor(r.endpoint)
	select {
	case g.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, c.cancelled(r, "while waiting for another request to this endpoint", ctx)
	}
	defer func() { <-g.sem }()

	var waited time.Duration
	for attempt := 0; ; attempt++ {
		if d := min(g.until.Sub(c.cfg.now()), c.cfg.maxWait); d > 0 {
			waited += d
			if err := c.cfg.sleep(ctx, d); err != nil {
				return nil, c.cancelled(r, "while waiting for the rate limit", ctx)
			}
		}
		resp, err := c.send(ctx, r)
		if err != nil {
			if ctx.Err() != nil {
				return nil, c.cancelled(r, "", ctx)
			}
			return nil, c.errorf(r, ErrNetwork, 0, "no response from Sentry; check -url and the network", err)
		}
		body, readErr := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes+1))
		resp.Body.Close()
		now := c.cfg.now()
		limits := parseRateLimit(resp.Header, now)
		g.until = limits.spentUntil(now, c.cfg.maxWait)
		if resp.StatusCode == http.StatusTooManyRequests || transient(resp.StatusCode) {
			if attempt >= c.cfg.maxRetries {
				return nil, c.gaveUp(r, resp.StatusCode, attempt, body)
			}
			d := limits.retryDelay(now, func() time.Duration { return backoff(c.cfg.baseBackoff, attempt) })
			g.until = later(g.until, now.Add(min(d, c.cfg.maxWait)))
			continue
		}
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return nil, c.classify(r, resp.StatusCode, body)
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

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
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
