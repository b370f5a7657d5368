package fakesentry

import (
	"os"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// An error event as @sentry/node 11.12.0 sent it (its stack trimmed):
// what sentry-go's types cannot decode as such (a numeric timestamp, the
// exception and breadcrumbs as {"values": ...}, the request's cookies as
// an object) is accepted, as Sentry accepts it.
func TestDecodeEventOfSentryNode(t *testing.T) {
	raw, err := os.ReadFile("testdata/sentry-node-event.json")
	require.NoError(t, err)
	ev, err := decodeEvent(raw)
	require.NoError(t, err)
	require.Len(t, ev.Exception, 1)
	assert.Equal(t, "CardDeclinedError", ev.Exception[0].Type)
	assert.Equal(t, "card declined", ev.Exception[0].Value)
	assert.Equal(t, time.Date(2026, 12, 6, 22, 17, 34, 578e6, time.UTC), ev.Timestamp)
	require.Len(t, ev.Breadcrumbs, 1)
	assert.Equal(t, time.Date(2026, 12, 6, 22, 17, 33, 653e6, time.UTC), ev.Breadcrumbs[0].Timestamp)
	assert.Equal(t, "sentry.javascript.node", ev.Sdk.Name)
	assert.Equal(t, "0123456789abcdef0123456789abcdef", ev.Contexts["trace"]["trace_id"])
}

func TestDecodeEventShapes(t *testing.T) {
	tests := []struct {
		name  string
		event string
		check func(t *testing.T, e *sentry.Event)
	}{
		{"timestamps as seconds", `{"timestamp":1700000000.25,"start_timestamp":1700000000}`, func(t *testing.T, e *sentry.Event) {
			assert.Equal(t, time.Unix(1700000000, 250e6).UTC(), e.Timestamp)
			assert.Equal(t, time.Unix(1700000000, 0).UTC(), e.StartTime)
		}},
		{"timestamp as RFC 3339", `{"timestamp":"2024-01-01T00:00:00.5Z"}`, func(t *testing.T, e *sentry.Event) {
			assert.Equal(t, time.Date(2024, 1, 1, 0, 0, 0, 5e8, time.UTC), e.Timestamp)
		}},
		{"exception as a list", `{"exception":[{"type":"E","value":"v"}]}`, func(t *testing.T, e *sentry.Event) {
			require.Len(t, e.Exception, 1)
			assert.Equal(t, "E", e.Exception[0].Type)
		}},
		{"threads as values", `{"threads":{"values":[{"id":"1","crashed":true}]}}`, func(t *testing.T, e *sentry.Event) {
			require.Len(t, e.Threads, 1)
			assert.True(t, e.Threads[0].Crashed)
		}},
		{"tags as pairs", `{"tags":[["service.name","payment"],["a","b"]]}`, func(t *testing.T, e *sentry.Event) {
			assert.Equal(t, map[string]string{"service.name": "payment", "a": "b"}, e.Tags)
		}},
		{"request as pairs", `{"request":{"headers":[["Accept","*/*"]],"cookies":{"b":"2","a":"1"},"query_string":[["q","x"]]}}`, func(t *testing.T, e *sentry.Event) {
			assert.Equal(t, map[string]string{"Accept": "*/*"}, e.Request.Headers)
			assert.Equal(t, "a=1; b=2", e.Request.Cookies)
			assert.Equal(t, "q=x", e.Request.QueryString)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := decodeEvent([]byte(tt.event))
			require.NoError(t, err)
			tt.check(t, ev)
		})
	}
}
