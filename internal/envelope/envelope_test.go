package envelope

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
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
			env, err := Parse([]byte(tt.data))
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

// Append writes what Parse reads: items with a length round-trip whatever
// their payload holds, newlines included.
func TestAppendRoundTrips(t *testing.T) {
	payloads := []string{`{"event_id":"a"}`, "line one\nline two\n", ""}
	var items []Item
	for i, p := range payloads {
		items = append(items, Item{Type: "attachment", Header: []byte(fmt.Sprintf(`{"type":"attachment","length":%d,"n":%d}`, len(p), i)), Payload: []byte(p)})
	}
	data := Append(nil, []byte(`{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc"}`), items...)
	env, err := Parse(data)
	require.NoError(t, err)
	assert.Equal(t, "9ec79c33ec9942ab8353589fcb2e04dc", env.EventID)
	require.Len(t, env.Items, len(items))
	for i := range items {
		assert.Equal(t, string(items[i].Header), string(env.Items[i].Header))
		assert.Equal(t, payloads[i], string(env.Items[i].Payload))
	}
}
