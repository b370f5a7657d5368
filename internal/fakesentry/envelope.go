package fakesentry

import "github.com/tracedup/tracedup/internal/envelope"

// ErrMalformed is wrapped by every error [ParseEnvelope] returns.
var ErrMalformed = envelope.ErrMalformed

// Envelope is one decoded Sentry envelope; see package envelope.
type Envelope = envelope.Envelope

// Item is one item of an [Envelope].
type Item = envelope.Item

// ParseEnvelope decodes data in the Sentry envelope format: see
// envelope.Parse.
func ParseEnvelope(data []byte) (Envelope, error) { return envelope.Parse(data) }

func decodeObject(line []byte, v any) error { return envelope.DecodeObject(line, v) }
