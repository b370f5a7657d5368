package dedup

import (
	"context"

	"go.opentelemetry.io/otel/metric"
)

const meterName = "github.com/tracedup/tracedup/dedup"

// registerMetrics exposes t's Stats as asynchronous OTel instruments, read
// at collection time: the hot path pays nothing for them. It returns nil if
// the meter refuses the instruments.
func registerMetrics(t *Transport) metric.Registration {
	m := t.cfg.meterProvider.Meter(meterName)
	counter := func(name, desc string) metric.Int64ObservableCounter {
		c, _ := m.Int64ObservableCounter(name, metric.WithDescription(desc), metric.WithUnit("{event}"))
		return c
	}
	received := counter("tracedup.dedup.received", "Events given to the deduplicator.")
	emitted := counter("tracedup.dedup.emitted", "Events handed to the inner transport.")
	suppressed := counter("tracedup.dedup.suppressed", "Events suppressed as cascades of another event of their trace.")
	passed := counter("tracedup.dedup.passed_through", "Events sent at once: no trace id, not an error, or after Close.")
	overflow := counter("tracedup.dedup.overflow", "Events sent at once because a bound was reached.")
	late := counter("tracedup.dedup.late", "Events that arrived after their trace's report was sent.")
	cascades := counter("tracedup.dedup.cascades", "Events of a trace whose error a downstream service reported.")
	failures := counter("tracedup.dedup.strategy_failures", "Traces whose root-cause strategy failed; all their events were sent.")
	pending, _ := m.Int64ObservableUpDownCounter("tracedup.dedup.pending",
		metric.WithDescription("Events held, waiting for their trace's window to end."), metric.WithUnit("{event}"))

	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := t.Stats()
		o.ObserveInt64(received, int64(s.Received))
		o.ObserveInt64(emitted, int64(s.Emitted))
		o.ObserveInt64(suppressed, int64(s.Suppressed))
		o.ObserveInt64(passed, int64(s.PassedThrough))
		o.ObserveInt64(overflow, int64(s.Overflow))
		o.ObserveInt64(late, int64(s.Late))
		o.ObserveInt64(failures, int64(s.StrategyFailures))
		o.ObserveInt64(cascades, int64(s.Cascades))
		o.ObserveInt64(pending, int64(s.Pending))
		return nil
	}, received, emitted, suppressed, passed, overflow, late, failures, cascades, pending)
	if err != nil {
		return nil
	}
	return reg
}
