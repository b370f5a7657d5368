package fakesentry

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseEnvelope(t *testing.T) {
	type item struct{ typ, payload string }
	tests := []struct {
		name    string
		data    string
		eventID string
		items   []item
		wantErr bool
	}{
		{name: "header only", data: `{}`},
		{name: "header and newline", data: "{\"event_id\":\"abc\"}\n", eventID: "abc"},
		{
			name:  "length, trailing newline",
			data:  "{}\n{\"type\":\"event\",\"length\":2}\n{}\n",
			items: []item{{"event", "{}"}},
		},
		{
			name:  "length, no trailing newline",
			data:  "{}\n{\"type\":\"event\",\"length\":2}\n{}",
			items: []item{{"event", "{}"}},
		},
		{
			name:  "length covers a newline",
			data:  "{}\n{\"type\":\"attachment\",\"length\":3}\na\nb\n{\"type\":\"log\"}\nx\n",
			items: []item{{"attachment", "a\nb"}, {"log", "x"}},
		},
		{
			name:  "no length runs to newline",
			data:  "{}\n{\"type\":\"client_report\"}\n{\"a\":1}\n{\"type\":\"event\"}\n{}",
			items: []item{{"client_report", `{"a":1}`}, {"event", "{}"}},
		},
		{
			name:  "empty payload at end",
			data:  "{}\n{\"type\":\"attachment\",\"length\":0}",
			items: []item{{"attachment", ""}},
		},
		{
			name:  "extra trailing newlines",
			data:  "{}\n{\"type\":\"event\",\"length\":2}\n{}\n\n\n",
			items: []item{{"event", "{}"}},
		},
		{name: "empty", data: "", wantErr: true},
		{name: "garbage", data: "hello world", wantErr: true},
		{name: "header not an object", data: "[1]\n", wantErr: true},
		{name: "header null", data: "null\n", wantErr: true},
		{name: "event_id not a string", data: `{"event_id":1}`, wantErr: true},
		{name: "item header garbage", data: "{}\nnope\n{}", wantErr: true},
		{name: "item without type", data: "{}\n{\"length\":2}\n{}", wantErr: true},
		{name: "length beyond body", data: "{}\n{\"type\":\"event\",\"length\":99}\n{}\n", wantErr: true},
		{name: "negative length", data: "{}\n{\"type\":\"event\",\"length\":-1}\n{}\n", wantErr: true},
		{name: "fractional length", data: "{}\n{\"type\":\"event\",\"length\":1.5}\n{}\n", wantErr: true},
		{name: "length too short", data: "{}\n{\"type\":\"event\",\"length\":1}\n{}\n", wantErr: true},
		{name: "blank line between items", data: "{}\n{\"type\":\"log\"}\nx\n\n{\"type\":\"log\"}\ny\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, err := ParseEnvelope([]byte(tt.data))
			if tt.wantErr {
				require.ErrorIs(t, err, ErrMalformed)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.eventID, env.EventID)
			var got []item
			for _, it := range env.Items {
				got = append(got, item{it.Type, string(it.Payload)})
			}
			assert.Equal(t, tt.items, got)
		})
	}
}

func FuzzEnvelope(f *testing.F) {
	for _, seed := range []string{
		"{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\",\"sent_at\":\"2024-01-01T00:00:00Z\"}\n" +
			"{\"type\":\"event\",\"length\":41}\n{\"event_id\":\"9ec79c33ec9942ab8353589fc\"}\n",
		"{}\n{\"type\":\"transaction\"}\n{\"contexts\":{\"trace\":{\"trace_id\":\"a\"}}}\n",
		"{}\n{\"type\":\"attachment\",\"length\":3}\na\nb\n{\"type\":\"client_report\"}\n{}\n",
		"{}\n{\"type\":\"event\",\"length\":99}\n{}",
		"{}\n{\"type\":\"event\"}\n{\"tags\":{\"a\":1}}",
		"{}\n{\"type\":\"event\"}\n{\"timestamp\":\"yesterday\"}",
		"",
		"\n\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := ParseEnvelope(data)
		if err == nil {
			total := len(env.Header)
			for _, it := range env.Items {
				if it.Type == "" {
					t.Fatalf("item without type in %q", data)
				}
				if !bytes.Contains(data, it.Payload) {
					t.Fatalf("payload %q not in %q", it.Payload, data)
				}
				total += len(it.Header) + len(it.Payload)
			}
			if total > len(data) {
				t.Fatalf("parsed %d bytes out of %d", total, len(data))
			}
		}
		// The server's whole decoding step must not panic either.
		a, derr := decode("1", data, time.Time{})
		if err != nil && derr == nil {
			t.Fatalf("decode accepted an envelope ParseEnvelope refused: %q", data)
		}
		if derr == nil && len(a.events) > 0 && a.events[0].Event == nil {
			t.Fatalf("accepted event without decoded Event: %q", data)
		}
	})
}
