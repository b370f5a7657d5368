package dedup_test

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/getsentry/sentry-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/internal/sentrytest"
)

// meterName is the instrumentation scope of the Transport's metrics.
const meterName = "github.com/tracedup/tracedup/dedup"

// metricsOf returns the Stats each metric must equal, by metric name and,
// where it has one, error.type.
func metricsOf(s dedup.Stats) map[string]int64 {
	return map[string]int64{
		"tracedup.dedup.received":                int64(s.Received),
		"tracedup.dedup.emitted":                 int64(s.Emitted),
		"tracedup.dedup.suppressed":              int64(s.Suppressed),
		"tracedup.dedup.pending":                 int64(s.Pending),
		"tracedup.dedup.passed_through":          int64(s.PassedThrough),
		"tracedup.dedup.no_trace":                int64(s.NoTrace),
		"tracedup.dedup.overflow":                int64(s.Overflow),
		"tracedup.dedup.late":                    int64(s.Late),
		"tracedup.dedup.strategy_failures":       int64(s.StrategyFailures),
		"tracedup.dedup.cascades":                int64(s.Cascades),
		"tracedup.dedup.late_suppressed":         int64(s.LateSuppressed),
		"tracedup.dedup.traces":                  int64(s.Traces),
		"tracedup.dedup.dropped/queue_full":      int64(s.QueueFull),
		"tracedup.dedup.dropped/inner_panic":     int64(s.InnerPanics),
		"tracedup.dedup.dropped/abandoned":       int64(s.Abandoned),
		"tracedup.dedup.dropped/after_close":     int64(s.AfterClose),
		"tracedup.dedup.decided_early":           int64(s.DecidedEarly),
		"tracedup.dedup.request_ended":           int64(s.RequestEnded),
		"tracedup.dedup.held_bytes":              int64(s.HeldBytes),
		"tracedup.dedup.not_acknowledged":        int64(s.NotAcknowledged),
		"tracedup.dedup.untracked":               int64(s.Untracked),
		"tracedup.dedup.untrusted":               int64(s.Untrusted),
		"tracedup.dedup.cascade_logs":            int64(s.CascadeLogs),
		"tracedup.dedup.cascade_logs/queue_full": int64(s.CascadeLogsDropped),
	}
}

// collect reads the dedup metrics from r, by name.
func collect(t *testing.T, r *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.Collect(context.Background(), &rm))
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != meterName {
			continue
		}
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			require.True(t, ok, "%s: want an int64 sum, got %T", m.Name, m.Data)
			gauge := m.Name == "tracedup.dedup.pending" || m.Name == "tracedup.dedup.traces" || m.Name == "tracedup.dedup.held_bytes"
			assert.Equal(t, !gauge, sum.IsMonotonic, "%s: monotonic", m.Name)
			for _, dp := range sum.DataPoints {
				_, named := dp.Attributes.Value("otel.component.name")
				assert.True(t, named, "%s: otel.component.name", m.Name)
				key := m.Name
				if v, ok := dp.Attributes.Value("error.type"); ok {
					key += "/" + v.AsString()
				}
				got[key] += dp.Value
			}
		}
	}
	return got
}

func TestMetricsEqualStats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		defer func() { require.NoError(t, mp.Shutdown(context.Background())) }()
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
		// The gateway's error again, after A's report: a late cascade.
		tr.SendEvent(errEvent(traceA, "00000000000000a1", "", "gateway", "*main.Timeout"))
		for _, ev := range b {
			tr.SendEvent(ev)
		}
		synctest.Wait() // B reached WithMaxEventsPerTrace: decided early
		// A fourth event of B, deeper than its report: sent late.
		tr.SendEvent(errEvent(traceB, "00000000000000d4", "00000000000000c3", "bank", "*main.Timeout"))
		tr.SendEvent(cascade(traceC)[0]) // held
		synctest.Wait()

		s := tr.Stats()
		assert.NotZero(t, s.HeldBytes, "C's event is held")
		want := dedup.Stats{
			Received: 10, Emitted: 4, Suppressed: 5, Pending: 1,
			PassedThrough: 1, Late: 2, LateSuppressed: 1, Traces: 1, DecidedEarly: 2,
		}
		want.HeldBytes = s.HeldBytes
		require.Equal(t, want, s)
		assert.Equal(t, metricsOf(s), collect(t, reader), "metrics while B is held")

		require.True(t, tr.Flush(time.Second))
		s = tr.Stats()
		require.Equal(t, uint64(0), s.Pending)
		assert.Equal(t, metricsOf(s), collect(t, reader), "metrics after Flush")

		tr.Close()
		assert.Empty(t, collect(t, reader), "Close unregisters the callback")
	})
}

func TestMetricsUseGlobalProviderByDefault(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	prev := otel.GetMeterProvider()
	otel.SetMeterProvider(mp)
	t.Cleanup(func() {
		otel.SetMeterProvider(prev)
		require.NoError(t, mp.Shutdown(context.Background()))
	})

	tr := dedup.NewTransport(sentrytest.NewTransport())
	tr.SendEvent(sentry.NewEvent())
	require.True(t, tr.Flush(time.Second))
	want := metricsOf(dedup.Stats{Received: 1, Emitted: 1, PassedThrough: 1})
	assert.Equal(t, want, collect(t, reader))
	tr.Close()
	assert.Empty(t, collect(t, reader))
}

// Two Transports on one MeterProvider report series of their own, told
// apart by otel.component.name, rather than one summed series.
func TestMetricsOfTwoTransportsStayApart(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { require.NoError(t, mp.Shutdown(context.Background())) }()
	a := dedup.NewTransport(sentrytest.NewTransport(), dedup.WithMeterProvider(mp))
	defer a.Close()
	b := dedup.NewTransport(sentrytest.NewTransport(), dedup.WithMeterProvider(mp))
	defer b.Close()
	a.SendEvent(sentry.NewEvent())
	b.SendEvent(sentry.NewEvent())
	b.SendEvent(sentry.NewEvent())

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	byComponent := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "tracedup.dedup.received" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				name, _ := dp.Attributes.Value("otel.component.name")
				byComponent[name.AsString()] += dp.Value
			}
		}
	}
	require.Len(t, byComponent, 2, "%v", byComponent)
	var counts []int64
	for _, v := range byComponent {
		counts = append(counts, v)
	}
	slices.Sort(counts)
	assert.Equal(t, []int64{1, 2}, counts)
}
