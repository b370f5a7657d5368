package relay

import (
	"context"
	"errors"
	"fmt"
	"go.opentelemetry.io/otel"
	"net/http"
	"net/url"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tracedup/tracedup/internal/envelope"
	"github.com/tracedup/tracedup/relay/internal/ingest"
	"github.com/tracedup/tracedup/relay/internal/kafka"
	"github.com/tracedup/tracedup/relay/internal/upstream"
)

// Role is what a relay does when relays share the work through Kafka.
type Role string

// The roles of a relay with Kafka.
const (
	// RoleBoth accepts SDKs' envelopes and decides its share of the
	// traces: every relay alike, the simplest fleet.
	RoleBoth Role = "both"
	// RoleIngest accepts envelopes and produces to the topic; it decides
	// nothing.
	RoleIngest Role = "ingest"
	// RoleDecide decides its share of the traces; it accepts no envelopes
	// (its HTTP endpoint answers only /healthz and /status).
	RoleDecide Role = "decide"
)

// Defaults of the Kafka settings.
const (
	DefaultTopic = kafka.DefaultTopic
	DefaultGroup = kafka.DefaultGroup
)

// KafkaConfig configures the relays' sharing of the work through a Kafka
// topic keyed by trace id. The zero value of each field means its default.
type KafkaConfig struct {
	// Brokers are the seed brokers, host:port; required.
	Brokers []string
	// Topic (DefaultTopic) and the consumer group of the deciding relays
	// (DefaultGroup).
	Topic, Group string
	// Role is RoleBoth by default.
	Role Role
	// CommitInterval is how often a deciding relay checkpoints: it pauses,
	// lets its held traces be decided, hands them upstream and commits
	// (default: the relay's window).
	CommitInterval time.Duration
	// Settle is the longest a checkpoint waits for held traces to be
	// decided on their own before deciding the rest (default: twice the
	// grace).
	Settle time.Duration
	// ProduceTimeout is the longest an SDK's request waits for Kafka to
	// acknowledge its event (2 s).
	ProduceTimeout time.Duration
	// Options are more client options (TLS, SASL, timeouts), for both the
	// producer and the consumer.
	Options []kgo.Opt
}

// kafkaStage is a Server's Kafka side.
type kafkaStage struct {
	role     Role
	sink     *kafka.Sink
	consumer *kafka.Consumer
}

// KafkaStats is what a Server's Kafka side counts.
type KafkaStats struct {
	Role     Role                 `json:"role"`
	Produce  *kafka.SinkStats     `json:"produce,omitempty"`
	Consumer *kafka.ConsumerStats `json:"consume,omitempty"`
}

// NewKafkaServer returns a Server that shares the work with the other
// relays of kc.Group through kc.Topic: its ingest stage (RoleBoth,
// RoleIngest) forwards at once what it does not deduplicate, and produces
// each error event and each trace's spans keyed by trace id, answering the
// SDK once Kafka acknowledged (429 with Retry-After when Kafka is slow or
// down, before the budget is full); its deciding stage (RoleBoth,
// RoleDecide) decides the traces of the partitions it owns and forwards to
// upstreamURL. The producer's bound of unacknowledged bytes is half the
// share of requests in flight (cfg.MaxBytes/32).
func NewKafkaServer(upstreamURL *url.URL, cfg Config, kc KafkaConfig) (*Server, error) {
	if len(kc.Brokers) == 0 {
		return nil, errors.New("relay: Kafka needs at least one broker")
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	switch kc.Role {
	case "":
		kc.Role = RoleBoth
	case RoleBoth, RoleIngest, RoleDecide:
	default:
		return nil, fmt.Errorf("relay: role %q: want both, ingest or decide", kc.Role)
	}
	if kc.CommitInterval <= 0 {
		kc.CommitInterval = cfg.Window
	}
	if kc.Settle <= 0 {
		kc.Settle = 2 * cfg.Grace
	}
	opts := append([]kgo.Opt{kgo.SeedBrokers(kc.Brokers...)}, kc.Options...)
	up := upstream.New(upstreamURL, upstream.WithMaxQueuedBytes(cfg.MaxBytes/16))
	s := &Server{relay: New(up, cfg), up: up, kafka: &kafkaStage{role: kc.Role}}
	var sink ingest.Sink = s.relay
	if kc.Role != RoleDecide {
		k, err := kafka.NewSink(kafka.SinkConfig{Topic: kc.Topic, ProduceTimeout: kc.ProduceTimeout, MaxBuffered: cfg.MaxBytes / 32}, opts...)
		if err != nil {
			s.close()
			return nil, err
		}
		s.kafka.sink, sink = k, k
	}
	s.ingest = ingest.NewHandler(sink, up, ingest.WithMaxInFlight(cfg.MaxBytes/32))
	if kc.Role != RoleIngest {
		c, err := kafka.NewConsumer(decider{s}, kafka.ConsumerConfig{Topic: kc.Topic, Group: kc.Group,
			CommitInterval: kc.CommitInterval, Settle: kc.Settle}, opts...)
		if err != nil {
			s.close()
			return nil, err
		}
		s.kafka.consumer = c
	}
	mp := cfg.MeterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	s.metrics = registerMetrics(s, mp)
	return s, nil
}

// close releases what NewKafkaServer started before it failed.
func (s *Server) close() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if s.kafka.sink != nil {
		_ = s.kafka.sink.Close(ctx)
	}
	s.relay.Close()
	_ = s.up.Close(ctx)
}

// decider is what a Consumer feeds: the Server's Relay, with the Server's
// Flush (decide, then wait for the queue upstream).
type decider struct{ s *Server }

func (d decider) Event(req *ingest.Request, item envelope.Item) error {
	return d.s.relay.Event(req, item)
}
func (d decider) Spans(req *ingest.Request, spans []ingest.Span) { d.s.relay.Spans(req, spans) }
func (d decider) Pending() uint64                                { return d.s.relay.dedup.Stats().Pending }
func (d decider) Flush(ctx context.Context) bool                 { return d.s.Flush(ctx) }

// serveKafka answers what a deciding-only relay does not accept; it
// reports false for everything else.
func (s *Server) serveKafka(w http.ResponseWriter, r *http.Request) bool {
	if s.kafka == nil || s.kafka.role != RoleDecide || r.URL.Path == "/healthz" {
		return false
	}
	http.Error(w, "tracedup-relay: this relay only decides (-role decide): send to an ingesting relay", http.StatusServiceUnavailable)
	return true
}

// kafkaStats returns the Kafka side's counters, nil without Kafka.
func (s *Server) kafkaStats() *KafkaStats {
	if s.kafka == nil {
		return nil
	}
	st := &KafkaStats{Role: s.kafka.role}
	if s.kafka.sink != nil {
		p := s.kafka.sink.Stats()
		st.Produce = &p
	}
	if s.kafka.consumer != nil {
		c := s.kafka.consumer.Stats()
		st.Consumer = &c
	}
	return st
}

// shutdownKafka waits for the producer's records to be acknowledged, then
// stops the consumer with a last checkpoint, within ctx.
func (s *Server) shutdownKafka(ctx context.Context) error {
	if s.kafka == nil {
		return nil
	}
	var err error
	if s.kafka.sink != nil {
		if e := s.kafka.sink.Close(ctx); e != nil {
			err = fmt.Errorf("relay: records not acknowledged by Kafka: %w", e)
		}
	}
	if s.kafka.consumer != nil {
		s.kafka.consumer.Close(ctx)
	}
	return err
}
