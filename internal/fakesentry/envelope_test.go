package fakesentry

import (
	"bytes"
	"testing"
	"time"
)

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
