package relay_test

import (
	"context"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/internal/fakesentry"
	"github.com/tracedup/tracedup/relay"
)

// Three services with no deduplicator of their own, each sending to the
// relay: N failing requests reach the upstream Sentry as N events, each
// payment's as sentry-go sent it, annotated with the two errors it stands
// for, each decided when its trace's spans had arrived rather than at the
// window's end.
func TestRelayCollapsesServicesThatRunNoTracedup(t *testing.T) {
	upstream, err := fakesentry.New()
	require.NoError(t, err)
	defer func() { _ = upstream.Close() }()
	u, err := url.Parse(upstream.URL())
	require.NoError(t, err)
	srv := relay.NewServer(u, relay.Config{Window: time.Hour})
	rs := httptest.NewServer(srv)
	defer rs.Close()
	defer func() { _ = srv.Shutdown(context.Background()) }()

	s := startShop(t, rs.URL)
	const requests = 10
	for range requests {
		s.request(t)
	}
	for _, c := range s.clients {
		require.True(t, c.Flush(10*time.Second))
	}
	// Decided a grace after each trace's spans arrived, with an hour's
	// window: the reports arrive without a flush of the relay.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got, err := upstream.WaitFor(ctx, requests)
	require.NoError(t, err, "%+v", srv.Stats())
	require.Len(t, got, requests)
	st := srv.Stats()
	assert.Equal(t, uint64(requests), st.Relay.Dedup.RequestEnded, "%+v", st.Relay.Dedup)
	for _, ev := range got {
		e := ev.Event
		require.NotEmpty(t, e.Exception)
		assert.Equal(t, "card declined", e.Exception[len(e.Exception)-1].Value)
		assert.Equal(t, "2", e.Tags[dedup.TagSuppressed])
		assert.NotNil(t, e.Contexts[dedup.ContextKey])
	}
	require.True(t, srv.Flush(ctx))
	assert.Len(t, upstream.Events(), requests, "nothing more after a flush")
	d := srv.Stats().Relay.Dedup
	assert.Equal(t, uint64(3*requests), d.Received)
	assert.Equal(t, d.Received, d.Emitted+d.Suppressed+d.Pending+d.Dropped)
}
