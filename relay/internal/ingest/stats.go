package ingest

import (
	"maps"
	"sync"
)

// Reasons a request is rejected, the keys of Stats.Rejected.
const (
	reasonNotFound     = "not_found"       // 404: no such endpoint
	reasonMethod       = "method"          // 405: not POST (or OPTIONS)
	reasonUnauthorized = "unauthorized"    // 401: no sentry_key
	reasonTooLarge     = "too_large"       // 413: over a size limit
	reasonEncoding     = "encoding"        // 400/415: unknown or bad Content-Encoding
	reasonMalformed    = "malformed"       // 400: not an envelope, event or OTLP body
	reasonContentType  = "content_type"    // 415: OTLP body neither protobuf nor JSON
	reasonRateLimited  = "rate_limited"    // 429: upstream rate limits or the forwarder's queue
	reasonSinkFull     = "sink_full"       // 429: the sink had no room for an event
	reasonForwardFull  = "forward_refused" // 429: the forwarder could not take the body
)

// otherItemType counts item types the handler does not know, so that the
// map stays small whatever SDKs send.
const otherItemType = "other"

// Stats counts what the handler saw.
type Stats struct {
	// Requests counts every HTTP request.
	Requests uint64
	// Envelopes counts envelope and store bodies accepted (answered 200).
	Envelopes uint64
	// OTLPRequests counts OTLP traces bodies accepted.
	OTLPRequests uint64
	// Items counts the items of accepted envelopes by type; types it does
	// not know are counted as "other".
	Items map[string]uint64
	// Events counts event items the sink took.
	Events uint64
	// Spans counts spans given to the sink.
	Spans uint64
	// SpanErrors counts transaction and span items (and OTLP bodies) whose
	// spans could not be read; they are forwarded all the same.
	SpanErrors uint64
	// Forwarded counts bodies the forwarder took.
	Forwarded uint64
	// Rejected counts requests answered with an error, by reason:
	// not_found, method, unauthorized, too_large, encoding, malformed,
	// content_type, rate_limited, sink_full, forward_refused.
	Rejected map[string]uint64
}

type counters struct {
	mu sync.Mutex
	s  Stats
}

func (c *counters) add(f func(s *Stats)) {
	c.mu.Lock()
	f(&c.s)
	c.mu.Unlock()
}

func (c *counters) snapshot() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.s
	s.Items = maps.Clone(c.s.Items)
	s.Rejected = maps.Clone(c.s.Rejected)
	return s
}
