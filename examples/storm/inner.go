package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/getsentry/sentry-go"
)

// The inner transport's behaviours (-inner).
const (
	innerOK    = "ok"    // takes every event at once
	innerStuck = "stuck" // a black-holed Sentry behind a transport that applies back-pressure: SendEvent blocks until Close
	innerSlow  = "slow"  // a slow Sentry: slowSend per SendEvent
)

// slowSend is how long SendEvent takes with -inner slow.
const slowSend = 5 * time.Millisecond

// counter is the inner transport: it counts, and times, what it is sent,
// and takes it as mode says.
type counter struct {
	mode string
	n    atomic.Int64

	mu   sync.Mutex
	seen map[string]time.Time // event id -> when it was handed over

	closeOnce sync.Once
	closed    chan struct{}
}

func newCounter(mode string, timed bool) (*counter, error) {
	switch mode {
	case innerOK, innerStuck, innerSlow:
	default:
		return nil, fmt.Errorf("-inner %q: want %s, %s or %s", mode, innerOK, innerStuck, innerSlow)
	}
	c := &counter{mode: mode, closed: make(chan struct{})}
	if timed {
		c.seen = make(map[string]time.Time)
	}
	return c, nil
}

func (c *counter) Configure(sentry.ClientOptions) {}

func (c *counter) SendEvent(e *sentry.Event) {
	switch c.mode {
	case innerStuck:
		<-c.closed
	case innerSlow:
		time.Sleep(slowSend)
	}
	c.n.Add(1)
	if c.seen != nil {
		c.mu.Lock()
		c.seen[string(e.EventID)] = time.Now()
		c.mu.Unlock()
	}
}

// FlushWithContext returns at once, but for a stuck transport, which
// returns false when ctx ends (true once closed).
func (c *counter) FlushWithContext(ctx context.Context) bool {
	if c.mode != innerStuck {
		return true
	}
	select {
	case <-c.closed:
		return true
	case <-ctx.Done():
		return false
	}
}

func (c *counter) Flush(timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return c.FlushWithContext(ctx)
}

// Close releases every SendEvent blocked in a stuck transport.
func (c *counter) Close() { c.closeOnce.Do(func() { close(c.closed) }) }
