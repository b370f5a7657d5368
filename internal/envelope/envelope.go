// Package envelope reads and writes Sentry's envelope format
// (https://develop.sentry.dev/sdk/data-model/envelopes/), for the embedded
// endpoint of the tests and demos and for the relay.
package envelope

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// ErrMalformed is wrapped by every error [Parse] returns.
var ErrMalformed = errors.New("envelope: malformed")

// Envelope is one decoded Sentry envelope. Its byte slices alias the input
// given to [Parse].
type Envelope struct {
	// Header is the envelope header line, a JSON object, as sent.
	Header json.RawMessage
	// EventID is the header's event_id; "" when absent.
	EventID string
	// Items are the envelope's items, in order.
	Items []Item
}

// Item is one item of an [Envelope].
type Item struct {
	// Type is the item header's type, such as "event", "transaction",
	// "attachment" or "client_report"; never "".
	Type string
	// Header is the item header line, a JSON object, as sent.
	Header json.RawMessage
	// Payload is the item payload, without the newline that ends it.
	Payload []byte
}

// Parse decodes data in the Sentry envelope format
// (https://develop.sentry.dev/sdk/data-model/envelopes/):
//
//	Envelope = Header { "\n" Item } [ "\n" ]
//	Item     = ItemHeader "\n" Payload
//
// An item header with a length is followed by exactly that many payload bytes
// and then a newline or the end of data; one without a length has a payload
// that runs to the next newline or the end of data. Trailing newlines are
// ignored. Parse returns an error wrapping [ErrMalformed] when the
// header or an item header is not a JSON object, an item has no type, or a
// length is negative, runs past the end of data, or is not followed by a
// newline. It does not look inside payloads.
func Parse(data []byte) (Envelope, error) {
	line, rest, _ := bytes.Cut(data, []byte{'\n'})
	var header struct {
		EventID string `json:"event_id"`
	}
	if err := DecodeObject(line, &header); err != nil {
		return Envelope{}, fmt.Errorf("%w: header: %w", ErrMalformed, err)
	}
	env := Envelope{Header: line, EventID: header.EventID}

	for n := 0; len(bytes.TrimLeft(rest, "\r\n")) > 0; n++ {
		line, rest, _ = bytes.Cut(rest, []byte{'\n'})
		var ih struct {
			Type   string `json:"type"`
			Length *int64 `json:"length"`
		}
		if err := DecodeObject(line, &ih); err != nil {
			return Envelope{}, fmt.Errorf("%w: item %d header: %w", ErrMalformed, n, err)
		}
		if ih.Type == "" {
			return Envelope{}, fmt.Errorf("%w: item %d has no type", ErrMalformed, n)
		}
		item := Item{Type: ih.Type, Header: line}
		if ih.Length == nil {
			item.Payload, rest, _ = bytes.Cut(rest, []byte{'\n'})
		} else {
			length := *ih.Length
			if length < 0 || length > int64(len(rest)) {
				return Envelope{}, fmt.Errorf("%w: item %d length %d, %d bytes left", ErrMalformed, n, length, len(rest))
			}
			item.Payload, rest = rest[:length], rest[length:]
			if len(rest) > 0 {
				if rest[0] != '\n' {
					return Envelope{}, fmt.Errorf("%w: item %d payload not followed by a newline", ErrMalformed, n)
				}
				rest = rest[1:]
			}
		}
		env.Items = append(env.Items, item)
	}
	return env, nil
}

// DecodeObject decodes line, which must hold exactly one JSON object, into v.
func DecodeObject(line []byte, v any) error {
	if trimmed := bytes.TrimSpace(line); len(trimmed) == 0 || trimmed[0] != '{' {
		return errors.New("not a JSON object")
	}
	return json.Unmarshal(line, v)
}

// Append appends to dst the envelope of header (a JSON object, without its
// newline) and items, each item with its header as given and its payload;
// an item header should carry the payload's length, which Append does not
// check. It returns the extended slice.
func Append(dst []byte, header []byte, items ...Item) []byte {
	dst = append(append(dst, header...), '\n')
	for _, it := range items {
		dst = append(append(dst, it.Header...), '\n')
		dst = append(append(dst, it.Payload...), '\n')
	}
	return dst
}
