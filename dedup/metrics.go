package dedup

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

const meterName = "github.com/tracedup/tracedup/dedup"

// components numbers the Transports of the process, so that two on one
// MeterProvider report series of their own (otel.component.name).
var components atomic.Int64

// registerMetrics exposes t's Stats as asynchronous OTel instruments, read
// at collection time: the hot path pays nothing for them. Reasons are an
// attribute, error.type (as OTel's BatchSpanProcessor counts its drops), and
// every series carries otel.component.type and otel.component.name, so that
// two Transports on one MeterProvider do not sum into one series. It
// returns nil if the meter refuses the instruments; errors go to the OTel
// error handler.
func registerMetrics(t *Transport) metric.Registration {
	m := t.cfg.meterProvider.Meter(meterName)
	component := attribute.NewSet(
		attribute.String("otel.component.type", "tracedup.dedup.Transport"),
		attribute.String("otel.component.name", "dedup/"+strconv.FormatInt(components.Add(1)-1, 10)),
	)
	var errs []error
	counter := func(name, desc, unit string) metric.Int64ObservableCounter {
		c, err := m.Int64ObservableCounter(name, metric.WithDescription(desc), metric.WithUnit(unit))
		errs = append(errs, err)
		return c
	}
	gauge := func(name, desc, unit string) metric.Int64ObservableUpDownCounter {
		c, err := m.Int64ObservableUpDownCounter(name, metric.WithDescription(desc), metric.WithUnit(unit))
		errs = append(errs, err)
		return c
	}
	const events, traces, calls, logs = "{event}", "{trace}", "{call}", "{log}"
	received := counter("tracedup.dedup.received", "Events given to the deduplicator.", events)
	emitted := counter("tracedup.dedup.emitted", "Events handed to the inner transport.", events)
	suppressed := counter("tracedup.dedup.suppressed", "Events suppressed as cascades of another event of their trace.", events)
	passed := counter("tracedup.dedup.passed_through", "Events sent without a window: no trace id, or not an error.", events)
	noTrace := counter("tracedup.dedup.no_trace", "Error events without a trace id: passed through, not deduplicated.", events)
	overflow := counter("tracedup.dedup.overflow", "Error events sent undecided for lack of room.", events)
	dropped := counter("tracedup.dedup.dropped", "Events that reached neither the inner transport nor a report, by error.type: queue_full, inner_panic, abandoned, after_close.", events)
	late := counter("tracedup.dedup.late", "Events judged against their trace's decision rather than in its window.", events)
	lateSuppressed := counter("tracedup.dedup.late_suppressed", "Late events suppressed as cascades of the report already sent.", events)
	cascades := counter("tracedup.dedup.cascades", "Events of a trace whose error a downstream service reported.", events)
	failures := counter("tracedup.dedup.strategy_failures", "Traces whose root-cause strategy failed; their events were sent, but for known symptoms.", traces)
	decidedEarly := counter("tracedup.dedup.decided_early", "Traces decided before their window ended because a bound was reached.", traces)
	requestEnded := counter("tracedup.dedup.request_ended", "Traces decided a grace after their last served call ended or their spans arrived.", traces)
	notAcked := counter("tracedup.dedup.not_acknowledged", "Error events of a served call that did not acknowledge it: the deduplicator was not sure they get through.", events)
	untracked := counter("tracedup.dedup.untracked", "Served calls not tracked for the acknowledgement: too many at once.", calls)
	untrusted := counter("tracedup.dedup.untrusted", "Answers to this service's calls not honoured: they did not verify.", calls)
	cascadeLogs := counter("tracedup.dedup.cascade_logs", "Logs sent on a cascade's trace, by outcome: sent, or error.type queue_full.", logs)
	pending := gauge("tracedup.dedup.pending", "Events held, or decided and not yet handed to the inner transport.", events)
	open := gauge("tracedup.dedup.traces", "Traces whose window is open.", traces)
	heldBytes := gauge("tracedup.dedup.held_bytes", "Estimated bytes of the events held in windows.", "By")
	if err := errors.Join(errs...); err != nil {
		otel.Handle(err)
	}

	with := metric.WithAttributeSet(component)
	reason := func(r string) metric.ObserveOption {
		return metric.WithAttributeSet(attribute.NewSet(append(component.ToSlice(), attribute.String("error.type", r))...))
	}
	reasons := []metric.ObserveOption{reason("queue_full"), reason("inner_panic"), reason("abandoned"), reason("after_close")}
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := t.Stats()
		for _, c := range []struct {
			i metric.Int64Observable
			v uint64
		}{
			{received, s.Received}, {emitted, s.Emitted}, {suppressed, s.Suppressed}, {passed, s.PassedThrough},
			{noTrace, s.NoTrace}, {overflow, s.Overflow}, {late, s.Late}, {lateSuppressed, s.LateSuppressed},
			{cascades, s.Cascades}, {failures, s.StrategyFailures}, {decidedEarly, s.DecidedEarly},
			{requestEnded, s.RequestEnded}, {notAcked, s.NotAcknowledged}, {untracked, s.Untracked},
			{untrusted, s.Untrusted}, {cascadeLogs, s.CascadeLogs}, {pending, s.Pending}, {open, s.Traces},
			{heldBytes, s.HeldBytes},
		} {
			o.ObserveInt64(c.i, int64(c.v), with)
		}
		for i, v := range []uint64{s.QueueFull, s.InnerPanics, s.Abandoned, s.AfterClose} {
			o.ObserveInt64(dropped, int64(v), reasons[i])
		}
		o.ObserveInt64(cascadeLogs, int64(s.CascadeLogsDropped), reason("queue_full"))
		return nil
	}, received, emitted, suppressed, passed, noTrace, overflow, dropped, late, lateSuppressed, cascades, failures,
		decidedEarly, requestEnded, notAcked, untracked, untrusted, cascadeLogs, pending, open, heldBytes)
	if err != nil {
		otel.Handle(err)
		return nil
	}
	return reg
}
