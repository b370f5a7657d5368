package upstream

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/tracedup/tracedup/relay/internal/ingest"
)

var _ ingest.Forwarder = (*Client)(nil)

// userAgent is sent when the SDK sent none.
const userAgent = "tracedup-relay"

// Stats counts what a [Client] was given and what became of it. At all
// times Received == Sent + Dropped + Pending, and Dropped is the sum of the
// Dropped… counters.
type Stats struct {
	// Received counts every Send and SendOTLP call.
	Received uint64
	// Sent counts requests the upstream answered with a 2xx.
	Sent uint64
	// Pending counts requests queued or being sent (retries included).
	Pending uint64
	// Dropped counts requests given up, the sum of the counters below.
	Dropped uint64
	// DroppedQueueFull counts requests refused because the queue's byte
	// budget was full.
	DroppedQueueFull uint64
	// DroppedRateLimited counts requests refused or given up because every
	// category they carry was rate limited upstream, or answered 429.
	DroppedRateLimited uint64
	// DroppedRejected counts requests the upstream refused with a 4xx other
	// than 429 (bad auth, too large, malformed): a retry would fail too.
	DroppedRejected uint64
	// DroppedRetriesExhausted counts requests that met network errors or
	// 5xx answers on every try.
	DroppedRetriesExhausted uint64
	// DroppedClosed counts requests given after Close, or abandoned when
	// Close's deadline passed.
	DroppedClosed uint64
	// Retries counts tries after the first.
	Retries uint64
	// RateLimitedResponses counts the upstream's 429 answers.
	RateLimitedResponses uint64
	// QueuedBytes is the size of the requests pending now.
	QueuedBytes int64
}

// job is one request to send upstream.
type job struct {
	project     string
	auth        ingest.Auth
	userAgent   string
	body        []byte
	categories  []string
	otlp        bool
	contentType string
	encoding    string
}

// Client forwards envelopes and OTLP traces to an upstream Sentry (a Sentry,
// a self-hosted Sentry, or another relay). Its methods are safe for
// concurrent use and never block on the upstream, except Flush and Close.
type Client struct {
	cfg  config
	base *url.URL

	notify chan struct{} // a job was queued; capacity cfg.workers
	quit   chan struct{} // closed when the workers are to stop
	ctx    context.Context
	cancel context.CancelFunc // aborts requests and backoffs in flight
	wg     sync.WaitGroup

	closeOnce sync.Once
	stopOnce  sync.Once

	mu       sync.Mutex
	queue    []*job
	inFlight int
	closed   bool
	limits   limits
	idle     chan struct{} // closed and replaced when nothing is pending
	stats    Stats
}

// New returns a Client that forwards to upstream, a URL of scheme, host and
// port (a path, if any, is kept as a prefix), and starts its workers. Call
// [Client.Close] to stop them.
func New(upstream *url.URL, options ...Option) *Client {
	cfg := newConfig(options)
	base := *upstream
	base.Path = strings.TrimRight(base.Path, "/")
	base.RawPath, base.RawQuery, base.Fragment, base.User = "", "", "", nil
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		cfg:    cfg,
		base:   &base,
		notify: make(chan struct{}, cfg.workers),
		quit:   make(chan struct{}),
		ctx:    ctx,
		cancel: cancel,
		limits: limits{},
		idle:   make(chan struct{}),
	}
	c.wg.Add(cfg.workers)
	for range cfg.workers {
		go c.work()
	}
	return c
}

// Send queues one encoded envelope for req's project, to be posted to
// /api/{project}/envelope/ with req's auth and User-Agent. It never blocks.
// It reports false, counted, when the client is closed, when every one of
// categories is rate limited upstream, or when the envelope does not fit in
// the queue's byte budget. The client keeps envelope until it is sent.
func (c *Client) Send(req *ingest.Request, envelope []byte, categories []string) bool {
	return c.enqueue(&job{
		project: req.Project, auth: req.Auth, userAgent: req.UserAgent,
		body: envelope, categories: categories,
		contentType: "application/x-sentry-envelope",
	})
}

// SendOTLP queues an OTLP/HTTP traces request body for req's project, to be
// posted to /api/{project}/integration/otlp/v1/traces with contentType,
// contentEncoding ("" for none) and req's auth. Like Send it never blocks
// and reports false, counted, when it cannot take the body.
func (c *Client) SendOTLP(req *ingest.Request, body []byte, contentType, contentEncoding string) bool {
	return c.enqueue(&job{
		project: req.Project, auth: req.Auth, userAgent: req.UserAgent,
		body: body, categories: []string{ingest.CategorySpan},
		otlp: true, contentType: contentType, encoding: contentEncoding,
	})
}

func (c *Client) enqueue(j *job) bool {
	now := c.cfg.clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.Received++
	switch {
	case c.closed:
		c.dropLocked(&c.stats.DroppedClosed)
		return false
	case c.limits.waitAll(j.categories, now) > 0:
		c.dropLocked(&c.stats.DroppedRateLimited)
		return false
	case c.stats.QueuedBytes+int64(len(j.body)) > c.cfg.maxQueuedBytes:
		c.dropLocked(&c.stats.DroppedQueueFull)
		return false
	}
	c.queue = append(c.queue, j)
	c.stats.QueuedBytes += int64(len(j.body))
	c.stats.Pending++
	select {
	case c.notify <- struct{}{}:
	default: // every worker has a wake-up waiting already
	}
	return true
}

// dropLocked counts one request given up under reason; c.mu must be held.
func (c *Client) dropLocked(reason *uint64) {
	*reason++
	c.stats.Dropped++
}

// RetryAfter returns how long SDKs should be told to wait before sending
// data of categories again: until at least one of them is no longer rate
// limited upstream, and at least DefaultBusyRetryAfter (or
// WithBusyRetryAfter) while the queue is more than three quarters full.
// It returns 0 when they need not wait.
func (c *Client) RetryAfter(categories []string) time.Duration {
	now := c.cfg.clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	wait := c.limits.waitAll(categories, now)
	if c.stats.QueuedBytes > c.cfg.maxQueuedBytes/4*3 {
		wait = max(wait, c.cfg.busyRetryAfter)
	}
	return wait
}

// Flush waits until every request queued so far has been sent or given up.
// It returns false if ctx ends first.
func (c *Client) Flush(ctx context.Context) bool {
	for {
		c.mu.Lock()
		if c.stats.Pending == 0 {
			c.mu.Unlock()
			return true
		}
		idle := c.idle
		c.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			return false
		}
	}
}

// Close stops taking requests, sends what is pending within ctx's deadline,
// then abandons what is left (counted as DroppedClosed) and stops the
// workers, waiting for them. It returns ctx.Err() when the deadline cut the
// sending short. Close is safe to call more than once and concurrently.
func (c *Client) Close(ctx context.Context) error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
	})
	flushed := c.Flush(ctx)
	c.stopOnce.Do(func() {
		c.cancel()
		close(c.quit)
		c.wg.Wait()
		c.mu.Lock()
		for _, j := range c.queue {
			c.finishLocked(j, &c.stats.DroppedClosed)
		}
		c.queue = nil
		c.mu.Unlock()
	})
	if !flushed {
		return ctx.Err()
	}
	return nil
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

func (c *Client) work() {
	defer c.wg.Done()
	for {
		c.mu.Lock()
		var j *job
		if len(c.queue) > 0 {
			j = c.queue[0]
			c.queue[0] = nil
			c.queue = c.queue[1:]
			c.inFlight++
		}
		c.mu.Unlock()
		if j == nil {
			select {
			case <-c.notify:
				continue
			case <-c.quit:
				return
			}
		}
		outcome := c.deliver(j)
		c.mu.Lock()
		c.inFlight--
		c.finishLocked(j, outcome)
		c.mu.Unlock()
	}
}

// finishLocked settles a pending job as counted by outcome (Sent or a
// Dropped… counter); c.mu must be held.
func (c *Client) finishLocked(j *job, outcome *uint64) {
	*outcome++
	if outcome != &c.stats.Sent {
		c.stats.Dropped++
	}
	c.stats.Pending--
	c.stats.QueuedBytes -= int64(len(j.body))
	if c.stats.Pending == 0 {
		close(c.idle)
		c.idle = make(chan struct{})
	}
}

// deliver sends j, retrying network errors and 5xx answers with backoff,
// and returns the counter of its outcome.
func (c *Client) deliver(j *job) *uint64 {
	for attempt := 1; ; attempt++ {
		now := c.cfg.clock.Now()
		c.mu.Lock()
		limited := c.limits.waitAll(j.categories, now) > 0
		c.mu.Unlock()
		if limited {
			return &c.stats.DroppedRateLimited
		}
		status, header, err := c.post(j)
		if c.ctx.Err() != nil {
			return &c.stats.DroppedClosed
		}
		now = c.cfg.clock.Now()
		c.mu.Lock()
		if err == nil {
			c.limits.prune(now)
			c.limits.update(status, header, now)
		}
		if status == http.StatusTooManyRequests {
			c.stats.RateLimitedResponses++
		}
		c.mu.Unlock()
		switch {
		case err == nil && status >= 200 && status < 300:
			return &c.stats.Sent
		case status == http.StatusTooManyRequests:
			return &c.stats.DroppedRateLimited
		case err == nil && status < 500:
			return &c.stats.DroppedRejected
		case attempt >= c.cfg.maxAttempts:
			return &c.stats.DroppedRetriesExhausted
		}
		wait := c.backoff(attempt)
		if err == nil && header.Get("Retry-After") != "" {
			wait = min(max(wait, parseRetryAfter(header.Get("Retry-After"), now)), c.cfg.maxBackoff)
		}
		if !c.cfg.clock.Sleep(c.ctx, wait) {
			return &c.stats.DroppedClosed
		}
		c.mu.Lock()
		c.stats.Retries++
		c.mu.Unlock()
	}
}

// backoff returns the wait after the attempt-th try failed: the minimum
// backoff doubled attempt-1 times, capped.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.cfg.minBackoff
	for i := 1; i < attempt && d < c.cfg.maxBackoff; i++ {
		d *= 2
	}
	return min(d, c.cfg.maxBackoff)
}

// post sends j once and returns the upstream's status and headers.
func (c *Client) post(j *job) (int, http.Header, error) {
	u := *c.base
	if j.otlp {
		u.Path += "/api/" + url.PathEscape(j.project) + "/integration/otlp/v1/traces"
	} else {
		u.Path += "/api/" + url.PathEscape(j.project) + "/envelope/"
	}
	u.RawQuery = j.auth.Query
	req, err := http.NewRequestWithContext(c.ctx, http.MethodPost, u.String(), bytes.NewReader(j.body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", j.contentType)
	if j.encoding != "" {
		req.Header.Set("Content-Encoding", j.encoding)
	}
	switch {
	case j.auth.Header != "":
		req.Header.Set("X-Sentry-Auth", j.auth.Header)
	case j.auth.Query == "" && j.auth.Key != "":
		// The key came in the envelope's dsn (a tunnel): Sentry reads it
		// there too, but an OTLP body has no dsn.
		req.Header.Set("X-Sentry-Auth", "Sentry sentry_version=7, sentry_key="+j.auth.Key)
	}
	ua := j.userAgent
	if ua == "" {
		ua = userAgent
	}
	req.Header.Set("User-Agent", ua)
	resp, err := c.cfg.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	// Drain a little so the connection can be reused; Sentry's answers are
	// small.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return resp.StatusCode, resp.Header, nil
}
