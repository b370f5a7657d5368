package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tracedup/tracedup/relay/internal/ingest"
)

// Defaults of the Consumer.
const (
	// DefaultCommitInterval is how often a Consumer checkpoints.
	DefaultCommitInterval = 10 * time.Second
	// DefaultSettle is the longest a checkpoint lets held traces be
	// decided on their own before it decides the rest.
	DefaultSettle = 2 * time.Second
	// DefaultFlushTimeout bounds a checkpoint's wait for upstream.
	DefaultFlushTimeout = 30 * time.Second
	// settleTick is how often a settling checkpoint looks at what is held.
	settleTick = 10 * time.Millisecond
	// pollRecords is the most records fed between two looks at the clock.
	pollRecords = 1000
)

// Decider is the relay that decides what a Consumer feeds it.
type Decider interface {
	// Event and Spans take a record's event or spans, as the ingest
	// stage would have handed them.
	ingest.Sink
	// Pending returns the number of events held for a decision.
	Pending() uint64
	// Flush decides every held trace and returns once what it sent, and
	// everything else queued upstream, was handed to the upstream Sentry
	// (sent, or given up and counted); false if ctx ended first.
	Flush(ctx context.Context) bool
}

// ConsumerConfig configures a Consumer; a zero field means its default.
type ConsumerConfig struct {
	Topic, Group string
	// CommitInterval is how often the consumer checkpoints
	// (DefaultCommitInterval): the most a crash makes the group read again.
	CommitInterval time.Duration
	// Settle is the longest a checkpoint waits for held traces to be
	// decided on their own (their spans arrived, plus the grace) before it
	// decides the rest early (DefaultSettle).
	Settle time.Duration
	// FlushTimeout bounds a checkpoint's wait for upstream
	// (DefaultFlushTimeout); past it nothing is committed, and the
	// partitions' next owner reads those records again.
	FlushTimeout time.Duration
}

// Consumer is a member of the deciding relays' consumer group: it feeds the
// records of the partitions it owns to its Decider in partition order, and
// commits an offset only once everything before it was decided and handed
// upstream. Every CommitInterval, and before partitions are revoked, it
// checkpoints: it stops feeding, lets held traces be decided (at most
// Settle, then decides the rest), waits for upstream, and commits what it
// fed. A crash loses nothing: the partitions' next owner reads on from the
// last commit, so what was decided since may be sent twice (at least once).
type Consumer struct {
	cl  *kgo.Client
	d   Decider
	cfg ConsumerConfig

	ctx    context.Context // canceled by Close and crash
	cancel context.CancelFunc
	done   chan struct{}

	crashed   atomic.Bool
	closing   atomic.Pointer[context.Context] // Close's: bounds the last revoke's checkpoint
	unfed     atomic.Bool                     // a polled record was not fed: commit nothing
	closeOnce sync.Once

	mu    sync.Mutex         // fed and owned: the loop and the group's callbacks
	fed   map[int32]int64    // per partition, the highest offset fed
	owned map[int32]struct{} // the partitions assigned now

	records, events, spanRecords, replayed, unreadable            atomic.Uint64
	uncommitted                                                   atomic.Int64
	refused                                                       atomic.Uint64
	checkpoints, commits, commitErrors, flushTimeouts, earlyFlush atomic.Uint64
	assigned, revoked, lost, fetchErrors                          atomic.Uint64
}

// NewConsumer joins cfg.Group with a client of opts (seed brokers, TLS,
// SASL...) and starts feeding d.
func NewConsumer(d Decider, cfg ConsumerConfig, opts ...kgo.Opt) (*Consumer, error) {
	if cfg.Topic == "" {
		cfg.Topic = DefaultTopic
	}
	if cfg.Group == "" {
		cfg.Group = DefaultGroup
	}
	if cfg.CommitInterval <= 0 {
		cfg.CommitInterval = DefaultCommitInterval
	}
	if cfg.Settle <= 0 {
		cfg.Settle = DefaultSettle
	}
	if cfg.FlushTimeout <= 0 {
		cfg.FlushTimeout = DefaultFlushTimeout
	}
	c := &Consumer{d: d, cfg: cfg, done: make(chan struct{}), fed: map[int32]int64{}, owned: map[int32]struct{}{}}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	opts = append([]kgo.Opt{
		kgo.ConsumeTopics(cfg.Topic),
		kgo.ConsumerGroup(cfg.Group),
		kgo.DisableAutoCommit(),
		// The group's callbacks run between two polls, never while a
		// poll's records are being fed: a checkpoint then commits exactly
		// what was fed.
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(c.onAssigned),
		kgo.OnPartitionsRevoked(c.onRevoked),
		kgo.OnPartitionsLost(c.onLost),
		// A new group reads the topic from its start: records produced
		// before the deciding relays joined are decided too.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	c.cl = cl
	go c.run()
	return c, nil
}

func (c *Consumer) run() {
	defer close(c.done)
	next := time.Now().Add(c.cfg.CommitInterval)
	for {
		ctx, cancel := context.WithDeadline(c.ctx, next)
		fs := c.cl.PollRecords(ctx, pollRecords)
		cancel()
		if fs.IsClientClosed() {
			return
		}
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				c.fetchErrors.Add(1)
			}
		})
		// Even when closing: what was polled counts as consumed, and the
		// last checkpoint commits it.
		fs.EachRecord(c.feed)
		if c.ctx.Err() != nil {
			return // AllowRebalance is Close's (CloseAllowingRebalance)
		}
		if !time.Now().Before(next) {
			c.checkpoint(c.ctx)
			next = time.Now().Add(c.cfg.CommitInterval)
		}
		c.cl.AllowRebalance()
	}
}

// feed hands one record to the decider.
func (c *Consumer) feed(r *kgo.Record) {
	c.records.Add(1)
	c.uncommitted.Add(1)
	c.mu.Lock()
	if last, ok := c.fed[r.Partition]; ok && r.Offset <= last {
		c.replayed.Add(1)
	} else {
		c.fed[r.Partition] = r.Offset
	}
	c.mu.Unlock()
	d, err := decode(r)
	if err != nil {
		c.unreadable.Add(1)
		return
	}
	if d.kind == kindSpans {
		c.spanRecords.Add(1)
		c.d.Spans(d.req, d.spans)
		return
	}
	c.events.Add(1)
	// A decider with no room now is waited for: a record is never
	// skipped, the partition waits (and Kafka holds what comes after).
	for backoff := 10 * time.Millisecond; ; backoff = min(2*backoff, time.Second) {
		err := c.d.Event(d.req, d.item)
		if !errors.Is(err, ingest.ErrFull) {
			return
		}
		c.refused.Add(1)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-c.ctx.Done():
			// Closing with the decider still full: the record was not
			// fed, so nothing may be committed past it any more.
			t.Stop()
			c.unfed.Store(true)
			return
		}
	}
}

// checkpoint lets held traces settle, decides the rest, waits for upstream
// and commits what was fed. Feeding is paused meanwhile: it runs on the
// loop, or in a group callback while the loop is blocked.
func (c *Consumer) checkpoint(ctx context.Context) {
	if c.crashed.Load() {
		return
	}
	c.checkpoints.Add(1)
	if c.d.Pending() > 0 {
		settle := time.NewTimer(c.cfg.Settle)
		tick := time.NewTicker(settleTick)
	wait:
		for c.d.Pending() > 0 {
			select {
			case <-tick.C:
			case <-settle.C:
				c.earlyFlush.Add(1)
				break wait
			case <-ctx.Done():
				break wait
			}
		}
		settle.Stop()
		tick.Stop()
	}
	// The loop's context is canceled when closing: its last checkpoint
	// still hands upstream what it decided, within FlushTimeout, or
	// within ctx's deadline when it has one (Close's).
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.FlushTimeout)
	defer cancel()
	deadline, ok := ctx.Deadline()
	if closing := c.closing.Load(); !ok && closing != nil {
		deadline, ok = (*closing).Deadline()
	}
	if d := deadline; ok {
		var cancelDeadline context.CancelFunc
		fctx, cancelDeadline = context.WithDeadline(fctx, d)
		defer cancelDeadline()
	}
	if !c.d.Flush(fctx) {
		c.flushTimeouts.Add(1)
		return // nothing committed: the records are read again
	}
	if c.crashed.Load() || c.unfed.Load() {
		return
	}
	fed := c.uncommitted.Load()
	if err := c.cl.CommitUncommittedOffsets(fctx); err != nil {
		c.commitErrors.Add(1)
		return
	}
	c.uncommitted.Add(-fed)
	c.commits.Add(1)
}

func (c *Consumer) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	c.assigned.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ps := range assigned {
		for _, p := range ps {
			c.owned[p] = struct{}{}
		}
	}
}

// onRevoked checkpoints before the partitions go, so that their next owner
// reads on from where this one decided.
func (c *Consumer) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	if c.crashed.Load() {
		return
	}
	c.revoked.Add(1)
	if closing := c.closing.Load(); closing != nil {
		ctx = *closing
	}
	c.checkpoint(ctx)
	c.forget(revoked)
}

// onLost is called when the partitions are gone already (the session
// expired): a commit would fail. What this relay holds is still decided
// and sent; the partitions' new owner reads the records again since the
// last commit, and the traces among them may be sent twice.
func (c *Consumer) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	if c.crashed.Load() {
		return
	}
	c.lost.Add(1)
	c.forget(lost)
}

func (c *Consumer) forget(parts map[string][]int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ps := range parts {
		for _, p := range ps {
			delete(c.fed, p)
			delete(c.owned, p)
		}
	}
}

// Close stops feeding, checkpoints and leaves the group, within ctx for
// the checkpoint. It is safe to call more than once.
func (c *Consumer) Close(ctx context.Context) {
	c.closeOnce.Do(func() {
		c.closing.Store(&ctx)
		c.cancel()
		<-c.done
		c.checkpoint(ctx)
		// Leaving the group revokes every partition: onRevoked commits
		// nothing more, since nothing more was fed.
		c.cl.CloseAllowingRebalance()
	})
}

// Crash stops the consumer as a crash would: no checkpoint, nothing more
// committed, the group left (a crashed member's partitions move once its
// session times out; leaving moves them at once). For tests.
func (c *Consumer) Crash() {
	c.closeOnce.Do(func() {
		c.crashed.Store(true)
		c.cancel()
		<-c.done
		c.cl.CloseAllowingRebalance()
	})
}

// ConsumerStats is what a Consumer counts.
type ConsumerStats struct {
	// Records counts records fed (Events + Spans + Unreadable);
	// Replayed, those this consumer had fed before (a failed commit, a
	// partition lost and assigned back): decided again.
	Records, Events, Spans, Unreadable, Replayed uint64
	// Uncommitted counts records fed since the last commit: what a crash
	// now would make the group read again.
	Uncommitted int64
	// Refused counts the times the decider had no room for an event (the
	// event is offered again).
	Refused uint64
	// Checkpoints, and of them Commits, CommitErrors and FlushTimeouts
	// (upstream did not take everything in time: nothing committed).
	// EarlyDecisions counts checkpoints that decided held traces before
	// their time, after Settle.
	Checkpoints, Commits, CommitErrors, FlushTimeouts, EarlyDecisions uint64
	// Assigned, Revoked and Lost count the group's rebalances as this
	// member saw them; FetchErrors errors fetching.
	Assigned, Revoked, Lost, FetchErrors uint64
	// Partitions is the number of partitions this member owns now.
	Partitions int
}

// Stats returns the Consumer's counters.
func (c *Consumer) Stats() ConsumerStats {
	c.mu.Lock()
	owned := len(c.owned)
	c.mu.Unlock()
	return ConsumerStats{Partitions: owned,
		Records: c.records.Load(), Events: c.events.Load(), Spans: c.spanRecords.Load(), Unreadable: c.unreadable.Load(),
		Replayed: c.replayed.Load(), Uncommitted: c.uncommitted.Load(), Refused: c.refused.Load(),
		Checkpoints: c.checkpoints.Load(), Commits: c.commits.Load(), CommitErrors: c.commitErrors.Load(),
		FlushTimeouts: c.flushTimeouts.Load(), EarlyDecisions: c.earlyFlush.Load(),
		Assigned: c.assigned.Load(), Revoked: c.revoked.Load(), Lost: c.lost.Load(), FetchErrors: c.fetchErrors.Load(),
	}
}
