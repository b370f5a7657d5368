package dedup_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/getsentry/sentry-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/embedded"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/internal/sentrytest"
)

// meterName is the instrumentation scope of the Transport's metrics.
const meterName = "github.com/tracedup/tracedup/dedup"

// metricsOf returns what each of the Transport's metrics must read when its
// Stats are s, by metric name.
func metricsOf(s dedup.Stats) map[string]int64 {
	return map[string]int64{
		"tracedup.dedup.received":          int64(s.Received),
		"tracedup.dedup.emitted":           int64(s.Emitted),
		"tracedup.dedup.suppressed":        int64(s.Suppressed),
		"tracedup.dedup.pending":           int64(s.Pending),
		"tracedup.dedup.passed_through":    int64(s.PassedThrough),
		"tracedup.dedup.overflow":          int64(s.Overflow),
		"tracedup.dedup.late":              int64(s.Late),
		"tracedup.dedup.strategy_failures": int64(s.StrategyFailures),
		"tracedup.dedup.cascades":          int64(s.Cascades),
	}
}

func TestMetricsEqualStats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mp := newMeterRecorder()
		inner := sentrytest.NewTransport()
		tr := dedup.NewTransport(inner, dedup.WithMeterProvider(mp), dedup.WithMaxEventsPerTrace(3))
		defer tr.Close()

		a, b := cascade(traceA), cascade(traceB)
		for _, ev := range a {
			tr.SendEvent(ev)
		}
		tr.SendEvent(sentry.NewEvent()) // no trace id: passed through
		time.Sleep(dedup.DefaultWindow)
		synctest.Wait() // A is decided: one report, two suppressed
		// The gateway fails again after A's report: a late cascade of it.
		tr.SendEvent(errEvent(traceA, "00000000000000a1", "", "gateway", "*main.Timeout"))
		for _, ev := range b {
			tr.SendEvent(ev)
		}
		// A fourth event of B: past WithMaxEventsPerTrace.
		tr.SendEvent(errEvent(traceB, "00000000000000d4", "00000000000000c3", "bank", "*main.Timeout"))
		synctest.Wait()

		s := tr.Stats()
		require.Equal(t, dedup.Stats{
			Received: 9, Emitted: 3, Suppressed: 3, Pending: 3,
			PassedThrough: 1, Overflow: 1, Late: 1, LateSuppressed: 1, Traces: 1,
		}, s)
		assert.Equal(t, metricsOf(s), mp.collect(t), "metrics while B is held")

		require.True(t, tr.Flush(time.Second))
		s = tr.Stats()
		require.Zero(t, s.Pending)
		assert.Equal(t, metricsOf(s), mp.collect(t), "metrics after Flush")

		tr.Close()
		assert.Empty(t, mp.collect(t), "Close unregisters the callback")
	})
}

func TestMetricsUseGlobalProviderByDefault(t *testing.T) {
	mp := newMeterRecorder()
	prev := otel.GetMeterProvider()
	otel.SetMeterProvider(mp)
	t.Cleanup(func() {
		otel.SetMeterProvider(prev)
		// The default global provider now delegates to mp for good; make
		// mp hand out no-op meters from here on, as a shut-down SDK does.
		mp.shutdown()
	})

	tr := dedup.NewTransport(sentrytest.NewTransport())
	tr.SendEvent(sentry.NewEvent())
	assert.Equal(t, metricsOf(dedup.Stats{Received: 1, Emitted: 1, PassedThrough: 1}), mp.collect(t))
	tr.Close()
	assert.Empty(t, mp.collect(t), "Close unregisters the callback")
}

// meterRecorder is a metric.MeterProvider that keeps the callbacks
// registered with its meters and runs them on collect, as an SDK reader
// does. Like the SDK, it refuses observations of instruments that were not
// named when their callback was registered, and it adds up what several
// callbacks observe for one instrument.
//
// It stands in for go.opentelemetry.io/otel/sdk/metric's ManualReader, which
// go.mod does not require.
type meterRecorder struct {
	embedded.MeterProvider

	mu        sync.Mutex
	callbacks map[*registration]struct{}
	stopped   bool
}

func newMeterRecorder() *meterRecorder {
	return &meterRecorder{callbacks: make(map[*registration]struct{})}
}

func (p *meterRecorder) Meter(name string, _ ...metric.MeterOption) metric.Meter {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return noop.Meter{}
	}
	return &recordingMeter{p: p, scope: name}
}

func (p *meterRecorder) shutdown() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	clear(p.callbacks)
}

// collect runs the registered callbacks and returns what they observed in
// the dedup scope, by metric name. Callbacks run without p.mu held.
func (p *meterRecorder) collect(t *testing.T) map[string]int64 {
	t.Helper()
	p.mu.Lock()
	regs := make([]*registration, 0, len(p.callbacks))
	for r := range p.callbacks {
		regs = append(regs, r)
	}
	p.mu.Unlock()

	got := map[string]int64{}
	for _, r := range regs {
		if r.scope != meterName {
			continue
		}
		o := &observer{registered: r.instruments, got: got}
		require.NoError(t, r.callback(context.Background(), o))
		require.NoError(t, o.err)
	}
	return got
}

type recordingMeter struct {
	noop.Meter // the instruments the Transport does not use
	p          *meterRecorder
	scope      string
}

func (m *recordingMeter) Int64ObservableCounter(name string, _ ...metric.Int64ObservableCounterOption) (metric.Int64ObservableCounter, error) {
	return &counter{name: name}, nil
}

func (m *recordingMeter) Int64ObservableUpDownCounter(name string, _ ...metric.Int64ObservableUpDownCounterOption) (metric.Int64ObservableUpDownCounter, error) {
	return &upDownCounter{name: name}, nil
}

func (m *recordingMeter) RegisterCallback(f metric.Callback, instruments ...metric.Observable) (metric.Registration, error) {
	r := &registration{p: m.p, scope: m.scope, callback: f, instruments: make(map[metric.Observable]bool)}
	for _, inst := range instruments {
		r.instruments[inst] = true
	}
	m.p.mu.Lock()
	defer m.p.mu.Unlock()
	m.p.callbacks[r] = struct{}{}
	return r, nil
}

type counter struct {
	noop.Int64ObservableCounter
	name string
}

type upDownCounter struct {
	noop.Int64ObservableUpDownCounter
	name string
}

type registration struct {
	embedded.Registration
	p           *meterRecorder
	scope       string
	callback    metric.Callback
	instruments map[metric.Observable]bool
}

func (r *registration) Unregister() error {
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	delete(r.p.callbacks, r)
	return nil
}

type observer struct {
	embedded.Observer
	registered map[metric.Observable]bool
	got        map[string]int64
	err        error
}

func (o *observer) ObserveFloat64(inst metric.Float64Observable, _ float64, _ ...metric.ObserveOption) {
	o.err = fmt.Errorf("unexpected float64 observation of %v", inst)
}

func (o *observer) ObserveInt64(inst metric.Int64Observable, v int64, _ ...metric.ObserveOption) {
	if !o.registered[inst] {
		o.err = fmt.Errorf("observed %v, which was not registered with the callback", inst)
		return
	}
	switch inst := inst.(type) {
	case *counter:
		if v < 0 {
			o.err = fmt.Errorf("counter %s observed %d", inst.name, v)
		}
		o.got[inst.name] += v
	case *upDownCounter:
		o.got[inst.name] += v
	default:
		o.err = fmt.Errorf("observed %T, not an instrument of this meter", inst)
	}
}
