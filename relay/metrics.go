package relay

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

const meterName = "github.com/tracedup/tracedup/relay"

// registerMetrics exposes the ingest stage's and the forwarder's counters as
// asynchronous OTel instruments on mp, read at collection time (the
// deduplicator registers its own, tracedup.dedup.*). Reasons are an
// attribute, error.type, as OTel's own processors count their drops. It
// returns nil if the meter refuses the instruments; errors go to
// otel.Handle.
func registerMetrics(s *Server, mp metric.MeterProvider) metric.Registration {
	m := mp.Meter(meterName)
	var errs []error
	counter := func(name, desc, unit string) metric.Int64ObservableCounter {
		c, err := m.Int64ObservableCounter(name, metric.WithDescription(desc), metric.WithUnit(unit))
		errs = append(errs, err)
		return c
	}
	requests := counter("tracedup.relay.requests", "HTTP requests from SDKs.", "{request}")
	rejected := counter("tracedup.relay.requests.rejected", "Requests answered with an error, by error.type: not_found, method, unauthorized, too_large, encoding, malformed, content_type, rate_limited, sink_full, forward_refused.", "{request}")
	items := counter("tracedup.relay.items", "Items of accepted envelopes, by item.type.", "{item}")
	spans := counter("tracedup.relay.spans", "Spans learned from transactions, span items and OTLP traces.", "{span}")
	upSent := counter("tracedup.relay.upstream.sent", "Requests the upstream Sentry accepted.", "{request}")
	upDropped := counter("tracedup.relay.upstream.dropped", "Requests to the upstream given up, by error.type: queue_full, rate_limited, rejected, retries_exhausted, closed.", "{request}")
	upRetries := counter("tracedup.relay.upstream.retries", "Tries after the first.", "{request}")
	queued, err := m.Int64ObservableUpDownCounter("tracedup.relay.upstream.queued", metric.WithDescription("Bytes queued for the upstream Sentry."), metric.WithUnit("By"))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		otel.Handle(err)
	}
	reason := func(r string) metric.ObserveOption { return metric.WithAttributes(attribute.String("error.type", r)) }
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		st := s.Stats()
		in, up := st.Ingest, st.Upstream
		o.ObserveInt64(requests, int64(in.Requests))
		for r, n := range in.Rejected {
			o.ObserveInt64(rejected, int64(n), reason(r))
		}
		for typ, n := range in.Items {
			o.ObserveInt64(items, int64(n), metric.WithAttributes(attribute.String("item.type", typ)))
		}
		o.ObserveInt64(spans, int64(in.Spans))
		o.ObserveInt64(upSent, int64(up.Sent))
		for r, n := range map[string]uint64{"queue_full": up.DroppedQueueFull, "rate_limited": up.DroppedRateLimited,
			"rejected": up.DroppedRejected, "retries_exhausted": up.DroppedRetriesExhausted, "closed": up.DroppedClosed} {
			o.ObserveInt64(upDropped, int64(n), reason(r))
		}
		o.ObserveInt64(upRetries, int64(up.Retries))
		o.ObserveInt64(queued, up.QueuedBytes)
		return nil
	}, requests, rejected, items, spans, upSent, upDropped, upRetries, queued)
	if err != nil {
		otel.Handle(err)
		return nil
	}
	return reg
}
