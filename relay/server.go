package relay

import (
	"context"

	"encoding/json"
	"errors"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"net/http"
	"net/url"

	"github.com/tracedup/tracedup/relay/internal/ingest"
	"github.com/tracedup/tracedup/relay/internal/upstream"
)

// Server is the whole relay over HTTP: the ingest stage that speaks
// Sentry's protocol to SDKs, the Relay that deduplicates their error
// events, and the forwarder to the upstream Sentry. Besides Sentry's
// endpoints it answers GET /healthz and GET /status (its counters, as JSON).
type Server struct {
	relay   *Relay
	up      *upstream.Client
	ingest  *ingest.Handler
	metrics metric.Registration
	kafka   *kafkaStage // nil without Kafka
}

// NewServer returns a Server that forwards to upstreamURL (scheme, host and
// port of a Sentry, a self-hosted Sentry or another relay). The budget of
// cfg.MaxBytes is shared: 3/4 for the deduplicator, 1/8 for span trees, and
// 1/8 for what is in flight: the queue upstream and request bodies being
// read, half each. Its counters are OTel metrics (tracedup.relay.* and the
// deduplicator's tracedup.dedup.*) on cfg.MeterProvider, the global one by
// default.
func NewServer(upstreamURL *url.URL, cfg Config) *Server {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	up := upstream.New(upstreamURL, upstream.WithMaxQueuedBytes(cfg.MaxBytes/16))
	r := New(up, cfg)
	s := &Server{relay: r, up: up, ingest: ingest.NewHandler(r, up, ingest.WithMaxInFlight(cfg.MaxBytes/16))}
	mp := cfg.MeterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	s.metrics = registerMetrics(s, mp)
	return s
}

// ServeHTTP serves SDKs, /healthz and /status.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/status" && r.Method == http.MethodGet {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s.Stats())
		return
	}
	if s.serveKafka(w, r) {
		return
	}
	s.ingest.ServeHTTP(w, r)
}

// ServerStats is what a Server counts.
type ServerStats struct {
	Relay    Stats          `json:"relay"`
	Ingest   ingest.Stats   `json:"ingest"`
	Upstream upstream.Stats `json:"upstream"`
	Kafka    *KafkaStats    `json:"kafka,omitempty"`
}

// Stats returns the Server's counters.
func (s *Server) Stats() ServerStats {
	return ServerStats{Relay: s.relay.Stats(), Ingest: s.ingest.Stats(), Upstream: s.up.Stats(), Kafka: s.kafkaStats()}
}

// Flush decides every held trace and waits until what the relay holds was
// sent upstream, or ctx ends.
func (s *Server) Flush(ctx context.Context) bool {
	return s.relay.Flush(ctx) && s.up.Flush(ctx)
}

// Shutdown decides every held trace, hands the reports upstream and sends
// what is queued, within ctx; what is left when ctx ends is counted as
// abandoned. Stop the HTTP server first, so that nothing more comes in.
// With Kafka, it first waits for the producer's records to be acknowledged
// and stops the consumer with a last checkpoint.
func (s *Server) Shutdown(ctx context.Context) error {
	kerr := s.shutdownKafka(ctx)
	s.relay.Flush(ctx)
	s.relay.Close()
	if s.metrics != nil {
		_ = s.metrics.Unregister()
	}
	return errors.Join(kerr, s.up.Close(ctx))
}
