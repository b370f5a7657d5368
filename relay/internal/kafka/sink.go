package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tracedup/tracedup/internal/envelope"
	"github.com/tracedup/tracedup/relay/internal/ingest"
)

// Defaults of the Sink.
const (
	// DefaultTopic and DefaultGroup name the topic and the consumer group
	// of the deciding relays.
	DefaultTopic = "tracedup-relay"
	DefaultGroup = "tracedup-relay"
	// DefaultProduceTimeout is the longest an SDK's request waits for
	// Kafka to acknowledge its event before it is told to back off.
	DefaultProduceTimeout = 2 * time.Second
	// DefaultMaxBuffered bounds the bytes the producer holds unacknowledged.
	DefaultMaxBuffered = 64 << 20
)

// SinkConfig configures a Sink; a zero field means its default.
type SinkConfig struct {
	Topic string
	// ProduceTimeout bounds how long Event waits for Kafka's
	// acknowledgement (DefaultProduceTimeout).
	ProduceTimeout time.Duration
	// MaxBuffered bounds the bytes of records produced and not yet
	// acknowledged (DefaultMaxBuffered): past it Event answers ErrFull
	// at once, so the SDK backs off before the relay's budget is full.
	MaxBuffered int64
}

// Sink is the ingest stage's Sink when relays share the work through Kafka:
// it writes each error event and each trace's spans to the topic, keyed by
// trace id, so that one deciding relay sees all of a trace.
type Sink struct {
	cl      *kgo.Client
	topic   string
	timeout time.Duration
	max     int64

	events, spans                     atomic.Uint64
	fullBuffered, failed, timedOut    atomic.Uint64
	spansDropped, spansFailed, unread atomic.Uint64
}

var _ ingest.Sink = (*Sink)(nil)

// NewSink returns a Sink that produces with a client of opts (seed brokers,
// TLS, SASL...), acknowledged by all in-sync replicas, idempotently.
func NewSink(cfg SinkConfig, opts ...kgo.Opt) (*Sink, error) {
	if cfg.Topic == "" {
		cfg.Topic = DefaultTopic
	}
	if cfg.ProduceTimeout <= 0 {
		cfg.ProduceTimeout = DefaultProduceTimeout
	}
	if cfg.MaxBuffered <= 0 {
		cfg.MaxBuffered = DefaultMaxBuffered
	}
	opts = append([]kgo.Opt{
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.MaxBufferedBytes(int(cfg.MaxBuffered)),
		// An SDK retries what it was told to retry: a record the relay
		// gave up on must not linger and arrive much later.
		// (franz-go allows no less than a second.)
		kgo.RecordDeliveryTimeout(max(4*cfg.ProduceTimeout, time.Second)),
		kgo.ProducerBatchMaxBytes(2 << 20),
		// An SDK's request waits for its record's acknowledgement:
		// franz-go's default linger (10 ms) would be most of it. Under
		// load, records batch while a request is in flight anyway
		// (BenchmarkKafka: the same rate at 1 ms as at 10 ms).
		kgo.ProducerLinger(time.Millisecond),
	}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	return &Sink{cl: cl, topic: cfg.Topic, timeout: cfg.ProduceTimeout, max: cfg.MaxBuffered}, nil
}

// Event implements ingest.Sink: it answers once Kafka acknowledged the
// event's record. It returns ErrFull, counted, when the producer already
// holds its bound of unacknowledged bytes, when Kafka refuses the record,
// or when it is not acknowledged within the produce timeout (it may still
// be written: the SDK's retry is then a duplicate of one event id, which
// Sentry drops).
func (s *Sink) Event(req *ingest.Request, item envelope.Item) error {
	r, err := eventRecord(s.topic, req, item)
	if err != nil {
		s.failed.Add(1)
		return fmt.Errorf("%w: %v", ingest.ErrFull, err)
	}
	if s.cl.BufferedProduceBytes()+int64(len(r.Value)) > s.max {
		s.fullBuffered.Add(1)
		return fmt.Errorf("%w: Kafka is behind", ingest.ErrFull)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	done := make(chan error, 1) // the promise never blocks
	s.cl.Produce(ctx, r, func(_ *kgo.Record, err error) { done <- err })
	select {
	case err = <-done:
	case <-ctx.Done():
		// Bounded even where the client cannot fail a batch already
		// sent (idempotence): the SDK is answered now.
		s.timedOut.Add(1)
		return fmt.Errorf("%w: Kafka did not acknowledge within %s", ingest.ErrFull, s.timeout)
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			s.timedOut.Add(1)
		} else {
			s.failed.Add(1)
		}
		return fmt.Errorf("%w: %v", ingest.ErrFull, err)
	}
	s.events.Add(1)
	return nil
}

// Spans implements ingest.Sink: it produces one record per trace, without
// waiting. Spans that do not fit are dropped, counted: a decision without
// them sends more, never less.
func (s *Sink) Spans(req *ingest.Request, spans []ingest.Span) {
	records, err := spansRecords(s.topic, req, spans)
	if err != nil {
		s.unread.Add(1)
		return
	}
	for _, r := range records {
		s.cl.TryProduce(context.Background(), r, func(_ *kgo.Record, err error) {
			switch {
			case errors.Is(err, kgo.ErrMaxBuffered):
				s.spansDropped.Add(1)
			case err != nil:
				s.spansFailed.Add(1)
			default:
				s.spans.Add(1)
			}
		})
	}
}

// SinkStats is what a Sink counts.
type SinkStats struct {
	// Events counts events Kafka acknowledged; Spans span records.
	Events, Spans uint64
	// Refused counts events answered ErrFull (the SDK was told to back
	// off), the sum of the three below: the producer held its bound
	// (Buffered), Kafka refused the record (Failed), or did not
	// acknowledge it in time (TimedOut).
	Refused, RefusedBuffered, RefusedFailed, RefusedTimedOut uint64
	// SpansDropped counts span records that did not fit in the producer's
	// bound; SpansFailed those Kafka refused.
	SpansDropped, SpansFailed uint64
	// BufferedBytes is what the producer holds unacknowledged now.
	BufferedBytes int64
}

// Stats returns the Sink's counters.
func (s *Sink) Stats() SinkStats {
	st := SinkStats{Events: s.events.Load(), Spans: s.spans.Load(),
		RefusedBuffered: s.fullBuffered.Load(), RefusedFailed: s.failed.Load(), RefusedTimedOut: s.timedOut.Load(),
		SpansDropped: s.spansDropped.Load(), SpansFailed: s.spansFailed.Load() + s.unread.Load(),
		BufferedBytes: s.cl.BufferedProduceBytes()}
	st.Refused = st.RefusedBuffered + st.RefusedFailed + st.RefusedTimedOut
	return st
}

// Close waits, within ctx, for what the producer holds to be acknowledged,
// then closes the client. It is safe to call once.
func (s *Sink) Close(ctx context.Context) error {
	err := s.cl.Flush(ctx)
	s.cl.Close()
	return err
}
