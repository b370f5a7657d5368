package dedup

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
)

const meterName = "github.com/tracedup/tracedup/dedup"

// registerMetrics exposes t's Stats as asynchronous OTel instruments, read
// at collection time: the hot path pays nothing for them. It returns nil if
// the meter refuses the instruments; errors go to the OTel error handler.
func registerMetrics(t *Transport) metric.Registration {
	m := t.cfg.meterProvider.Meter(meterName)
	var errs []error
	counter := func(name, desc string) metric.Int64ObservableCounter {
		c, err := m.Int64ObservableCounter(name, metric.WithDescription(desc), metric.WithUnit("{event}"))
		errs = append(errs, err)
		return c
	}
	gauge := func(name, desc, unit string) metric.Int64ObservableUpDownCounter {
		c, err := m.Int64ObservableUpDownCounter(name, metric.WithDescription(desc), metric.WithUnit(unit))
		errs = append(errs, err)
		return c
	}
	received := counter("tracedup.dedup.received", "Events given to the deduplicator.")
	emitted := counter("tracedup.dedup.emitted", "Events handed to the inner transport.")
	suppressed := counter("tracedup.dedup.suppressed", "Events suppressed as cascades of another event of their trace.")
	passed := counter("tracedup.dedup.passed_through", "Events sent without a window: no trace id, or not an error.")
	overflow := counter("tracedup.dedup.overflow", "Error events sent undecided for lack of room.")
	dropped := counter("tracedup.dedup.dropped", "Events that reached neither the inner transport nor a report: the sum of the reasons.")
	queueFull := counter("tracedup.dedup.dropped.queue_full", "Events dropped because the queue to the inner transport was full.")
	innerPanics := counter("tracedup.dedup.dropped.inner_panic", "Events whose hand-over panicked in the inner transport.")
	abandoned := counter("tracedup.dedup.dropped.abandoned", "Events Close could not hand over before its deadline.")
	afterClose := counter("tracedup.dedup.dropped.after_close", "Events sent after Close.")
	decidedEarly := counter("tracedup.dedup.decided_early", "Traces decided before their window ended because a bound was reached.")
	late := counter("tracedup.dedup.late", "Events that arrived after their trace's report was sent.")
	lateSuppressed := counter("tracedup.dedup.late_suppressed", "Late events suppressed as cascades of the report already sent.")
	cascades := counter("tracedup.dedup.cascades", "Events of a trace whose error a downstream service reported.")
	failures := counter("tracedup.dedup.strategy_failures", "Traces whose root-cause strategy failed; their events were sent, but for known symptoms.")
	pending := gauge("tracedup.dedup.pending", "Events held, or decided and not yet handed to the inner transport.", "{event}")
	traces := gauge("tracedup.dedup.traces", "Traces whose window is open.", "{trace}")
	heldBytes := gauge("tracedup.dedup.held_bytes", "Estimated bytes of the events held in windows.", "By")
	notAcked := counter("tracedup.dedup.not_acknowledged", "Error events of a served call that did not acknowledge it: the deduplicator was not sure they get through.")
	cascadeLogs := counter("tracedup.dedup.cascade_logs", "Logs sent on a cascade's trace, one for each error suppressed as a cascade of another service's report.")
	cascadeLogsDropped := counter("tracedup.dedup.cascade_logs_dropped", "Cascade logs that found no room in the queue to the inner transport.")
	noTrace := counter("tracedup.dedup.no_trace", "Error events without a trace id: passed through, not deduplicated.")
	untracked := counter("tracedup.dedup.untracked", "Served calls not tracked for the acknowledgement: too many at once.")
	if err := errors.Join(errs...); err != nil {
		otel.Handle(err)
	}

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
		o.ObserveInt64(lateSuppressed, int64(s.LateSuppressed))
		o.ObserveInt64(pending, int64(s.Pending))
		o.ObserveInt64(traces, int64(s.Traces))
		o.ObserveInt64(dropped, int64(s.Dropped))
		o.ObserveInt64(queueFull, int64(s.QueueFull))
		o.ObserveInt64(innerPanics, int64(s.InnerPanics))
		o.ObserveInt64(abandoned, int64(s.Abandoned))
		o.ObserveInt64(afterClose, int64(s.AfterClose))
		o.ObserveInt64(decidedEarly, int64(s.DecidedEarly))
		o.ObserveInt64(heldBytes, int64(s.HeldBytes))
		o.ObserveInt64(notAcked, int64(s.NotAcknowledged))
		o.ObserveInt64(untracked, int64(s.Untracked))
		o.ObserveInt64(noTrace, int64(s.NoTrace))
		o.ObserveInt64(cascadeLogs, int64(s.CascadeLogs))
		o.ObserveInt64(cascadeLogsDropped, int64(s.CascadeLogsDropped))
		return nil
	}, received, emitted, suppressed, passed, overflow, late, lateSuppressed, failures, cascades, pending, traces,
		dropped, queueFull, innerPanics, abandoned, afterClose, decidedEarly, heldBytes, notAcked, untracked, noTrace, cascadeLogs, cascadeLogsDropped)
	if err != nil {
		otel.Handle(err)
		return nil
	}
	return reg
}
