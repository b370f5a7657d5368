package kafka

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tracedup/tracedup/internal/envelope"
	"github.com/tracedup/tracedup/relay/internal/ingest"
)

func cluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(4, DefaultTopic)}, opts...)...)
	require.NoError(t, err)
	return c
}

func event(i int) envelope.Item {
	return envelope.Item{Type: "event", Header: []byte(`{"type":"event"}`),
		Payload: fmt.Appendf(nil, `{"event_id":"%032x","contexts":{"trace":{"trace_id":"%032x"}},"pad":%q}`, i, i%7+1, strings.Repeat("x", 1000))}
}

// eventually polls cond until it holds or d passes.
func eventually(t *testing.T, d time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf(msg, args...)
		}
		<-tick.C
	}
}

// Kafka slow: an event not acknowledged within the produce timeout is
// refused (the SDK told to back off), and while the producer holds its
// bound of unacknowledged bytes, the next is refused at once, before
// anything more is buffered.
func TestSinkRefusesWhenKafkaIsSlow(t *testing.T) {
	c := cluster(t)
	defer c.Close()
	release := make(chan struct{})
	var held atomic.Bool
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if held.CompareAndSwap(false, true) {
			c.SleepControl(func() { <-release })
		}
		return nil, nil, false
	})
	defer close(release) // before c.Close
	s, err := NewSink(SinkConfig{ProduceTimeout: 200 * time.Millisecond, MaxBuffered: 1500}, kgo.SeedBrokers(c.ListenAddrs()...))
	require.NoError(t, err)
	defer func() { _ = s.Close(context.Background()) }()

	req := &ingest.Request{Project: "1"}
	assert.ErrorIs(t, s.Event(req, event(1)), ingest.ErrFull)
	st := s.Stats()
	assert.Equal(t, uint64(1), st.RefusedTimedOut, "%+v", st)
	require.Positive(t, st.BufferedBytes, "the record sent is still held, unacknowledged")

	start := time.Now()
	assert.ErrorIs(t, s.Event(req, event(2)), ingest.ErrFull)
	assert.Less(t, time.Since(start), 100*time.Millisecond, "refused at once")
	st = s.Stats()
	assert.Equal(t, uint64(1), st.RefusedBuffered, "%+v", st)
	assert.Equal(t, uint64(2), st.Refused)
	assert.LessOrEqual(t, st.BufferedBytes, int64(1500))

	release <- struct{}{} // Kafka answers again
	eventually(t, 10*time.Second, func() bool { return s.Stats().BufferedBytes == 0 }, "never acknowledged")
	assert.NoError(t, s.Event(req, event(3)))
	assert.Equal(t, uint64(1), s.Stats().Events)
}

// decider is a Decider that records the event ids it is fed.
type decider struct {
	mu     sync.Mutex
	events []string
	spans  int
	ok     atomic.Bool // what Flush answers: upstream took everything
}

func (d *decider) Event(_ *ingest.Request, item envelope.Item) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.events = append(d.events, string(item.Payload[13:45]))
	return nil
}
func (d *decider) Spans(*ingest.Request, []ingest.Span) { d.mu.Lock(); d.spans++; d.mu.Unlock() }
func (d *decider) Pending() uint64                      { return 0 }
func (d *decider) Flush(context.Context) bool           { return d.ok.Load() }
func (d *decider) fed() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.events...)
}

// An offset is committed only once what came before it was handed upstream:
// a consumer whose upstream never takes what it decided commits nothing, and
// the group's next member is fed every record again; once one commits, the
// next is fed only what came after.
func TestConsumerCommitsOnlyWhatWasHandedUpstream(t *testing.T) {
	c := cluster(t)
	defer c.Close()
	seeds := kgo.SeedBrokers(c.ListenAddrs()...)
	s, err := NewSink(SinkConfig{}, seeds)
	require.NoError(t, err)
	defer func() { _ = s.Close(context.Background()) }()
	req := &ingest.Request{Project: "1"}
	const records = 10
	for i := range records {
		require.NoError(t, s.Event(req, event(i+1)))
	}
	cfg := ConsumerConfig{CommitInterval: 20 * time.Millisecond, FlushTimeout: time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	stuck := &decider{}
	c1, err := NewConsumer(stuck, cfg, seeds)
	require.NoError(t, err)
	eventually(t, 10*time.Second, func() bool { return len(stuck.fed()) == records && c1.Stats().FlushTimeouts > 1 }, "not fed: %+v", c1.Stats())
	c1.Close(ctx)
	assert.Zero(t, c1.Stats().Commits, "%+v", c1.Stats())

	d2 := &decider{}
	d2.ok.Store(true)
	c2, err := NewConsumer(d2, cfg, seeds)
	require.NoError(t, err)
	eventually(t, 10*time.Second, func() bool { return len(d2.fed()) == records }, "not fed again: %d", len(d2.fed()))
	c2.Close(ctx)
	assert.Positive(t, c2.Stats().Commits)
	assert.ElementsMatch(t, stuck.fed(), d2.fed())

	require.NoError(t, s.Event(req, event(records+1)))
	d3 := &decider{}
	d3.ok.Store(true)
	c3, err := NewConsumer(d3, cfg, seeds)
	require.NoError(t, err)
	eventually(t, 10*time.Second, func() bool { return len(d3.fed()) > 0 }, "not fed")
	c3.Close(ctx)
	assert.Equal(t, []string{fmt.Sprintf("%032x", records+1)}, d3.fed(), "only what came after the commit")
}
