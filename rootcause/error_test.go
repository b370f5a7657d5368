package rootcause_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tracedup/tracedup/rootcause"
)

func TestFromEvent(t *testing.T) {
	const (
		traceID = "0af7651916cd43dd8448eb211c80319c"
		spanID  = "b7ad6b7169203331"
		parent  = "00f067aa0ba902b7"
	)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name  string
		event *sentry.Event
		want  rootcause.Error
	}{
		{
			name:  "nil event",
			event: nil,
			want:  rootcause.Error{},
		},
		{
			name: "stamped by sentryotel",
			event: &sentry.Event{
				EventID:   "e1",
				Timestamp: at,
				Tags:      map[string]string{"otel.trace_id": traceID, "otel.span_id": spanID, "service.name": "payment"},
				Contexts: map[string]sentry.Context{"trace": {
					"trace_id": traceID, "span_id": spanID, "parent_span_id": parent,
				}},
				Exception: []sentry.Exception{
					{Type: "*main.CardError", Value: "insufficient funds"},
					{Type: "*main.PaymentDeclined", Value: "card declined"},
				},
			},
			want: rootcause.Error{
				EventID: "e1", TraceID: traceID, SpanID: spanID, ParentSpanID: parent, Service: "payment",
				ExceptionType: "*main.PaymentDeclined", Message: "card declined", Timestamp: at,
			},
		},
		{
			name: "with the span processor's ancestors",
			event: &sentry.Event{
				Tags: map[string]string{"otel.trace_id": traceID, "otel.span_id": spanID},
				Contexts: map[string]sentry.Context{
					"trace":    {"trace_id": traceID, "span_id": spanID, "parent_span_id": parent},
					"tracedup": {"ancestors": parent + ",1111111111111111"},
				},
			},
			want: rootcause.Error{TraceID: traceID, SpanID: spanID, ParentSpanID: parent,
				Ancestors: []string{parent, "1111111111111111"}},
		},
		{
			name: "trace context only, root span",
			event: &sentry.Event{
				Message:  "boom",
				Contexts: map[string]sentry.Context{"trace": {"trace_id": traceID, "span_id": spanID}},
			},
			want: rootcause.Error{TraceID: traceID, SpanID: spanID, Message: "boom"},
		},
		{
			name: "sentry's own typed ids are ignored",
			event: &sentry.Event{Contexts: map[string]sentry.Context{"trace": {
				"trace_id": sentry.TraceID{1}, "span_id": sentry.SpanID{2}, "parent_span_id": sentry.SpanID{3},
			}}},
			want: rootcause.Error{},
		},
		{
			name: "zero ids count as absent",
			event: &sentry.Event{Contexts: map[string]sentry.Context{"trace": {
				"trace_id": "00000000000000000000000000000000", "span_id": spanID, "parent_span_id": "0000000000000000",
			}}},
			want: rootcause.Error{SpanID: spanID},
		},
		{
			name: "parent of another span than the tagged one is not taken",
			event: &sentry.Event{
				Tags: map[string]string{"otel.trace_id": traceID, "otel.span_id": spanID},
				Contexts: map[string]sentry.Context{"trace": {
					"trace_id": traceID, "span_id": "1111111111111111", "parent_span_id": parent,
				}},
			},
			want: rootcause.Error{TraceID: traceID, SpanID: spanID},
		},
		{
			name: "exception without value keeps the message",
			event: &sentry.Event{
				Message:   "fallback",
				Exception: []sentry.Exception{{Type: "*errors.errorString"}},
			},
			want: rootcause.Error{ExceptionType: "*errors.errorString", Message: "fallback"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := rootcause.FromEvent(tt.event)
			tt.want.Event = tt.event
			assert.Equal(t, tt.want, got)
		})
	}
}

// TestFromEventAfterJSON checks that an event read back from JSON, as from a
// relay or the Sentry web API, gives the same Error.
func TestFromEventAfterJSON(t *testing.T) {
	event := &sentry.Event{
		EventID:   "e1",
		Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Contexts: map[string]sentry.Context{"trace": {
			"trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "b7ad6b7169203331", "parent_span_id": "00f067aa0ba902b7",
		}},
		Exception: []sentry.Exception{{Type: "*main.PaymentDeclined", Value: "card declined"}},
	}
	b, err := json.Marshal(event)
	require.NoError(t, err)
	var back sentry.Event
	require.NoError(t, json.Unmarshal(b, &back))

	want, got := rootcause.FromEvent(event), rootcause.FromEvent(&back)
	want.Event, got.Event = nil, nil
	assert.Equal(t, want, got)
}
