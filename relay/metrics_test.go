package relay_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/tracedup/tracedup/internal/fakesentry"
	"github.com/tracedup/tracedup/relay"
)

// The relay's counters are OTel metrics, equal to its Stats, the
// deduplicator's beside them; Shutdown unregisters them.
func TestMetricsEqualStats(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { require.NoError(t, mp.Shutdown(context.Background())) }()
	upstream, err := fakesentry.New()
	require.NoError(t, err)
	defer func() { _ = upstream.Close() }()
	u, _ := url.Parse(upstream.URL())
	srv := relay.NewServer(u, relay.Config{MeterProvider: mp})

	tpl := captured(t)
	for _, env := range [][]byte{
		eventEnvelope(t, tpl, "dd000000000000000000000000000001", "0af7651916cd43dd8448eb211c80319c", "00000000000000c3", "", "payment"),
		[]byte("{}\n{\"type\":\"transaction\"}\n{\"type\":\"transaction\",\"contexts\":{\"trace\":{\"trace_id\":\"0af7651916cd43dd8448eb211c80319c\",\"span_id\":\"00000000000000a1\"}},\"start_timestamp\":1,\"timestamp\":2}\n"),
		[]byte("not an envelope"),
	} {
		req := httptest.NewRequest(http.MethodPost, "/api/1/envelope/", bytes.NewReader(env))
		req.Header.Set("X-Sentry-Auth", "Sentry sentry_key=public, sentry_version=7")
		srv.ServeHTTP(httptest.NewRecorder(), req)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.True(t, srv.Flush(ctx))

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(ctx, &rm))
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok {
				for _, dp := range sum.DataPoints {
					key := m.Name
					if v, ok := dp.Attributes.Value("error.type"); ok {
						key += "/" + v.AsString()
					}
					if v, ok := dp.Attributes.Value("item.type"); ok {
						key += "/" + v.AsString()
					}
					got[key] += dp.Value
				}
			}
		}
	}
	st := srv.Stats()
	assert.EqualValues(t, st.Ingest.Requests, got["tracedup.relay.requests"])
	assert.EqualValues(t, 1, got["tracedup.relay.requests.rejected/malformed"])
	assert.EqualValues(t, 1, got["tracedup.relay.items/transaction"])
	assert.EqualValues(t, st.Upstream.Sent, got["tracedup.relay.upstream.sent"])
	assert.EqualValues(t, 1, got["tracedup.dedup.received"], "the deduplicator's beside them")

	require.NoError(t, srv.Shutdown(ctx))
	rm = metricdata.ResourceMetrics{}
	require.NoError(t, reader.Collect(ctx, &rm))
	for _, sm := range rm.ScopeMetrics {
		assert.Empty(t, sm.Metrics, "unregistered: %s", sm.Scope.Name)
	}
}
