package ingest

import "time"

// Forwarder sends what the ingest stage accepts to the upstream Sentry;
// upstream.Client is the one the relay uses. Its methods must not block.
type Forwarder interface {
	// Send queues one encoded envelope for req's project with req's auth. It
	// reports false when it could not take it (no room, or every one of
	// categories rate limited upstream).
	Send(req *Request, envelope []byte, categories []string) bool
	// SendOTLP queues an OTLP traces request body for req's project.
	SendOTLP(req *Request, body []byte, contentType, contentEncoding string) bool
	// RetryAfter returns how long SDKs should wait before sending data of
	// every one of categories again; 0 when they need not wait.
	RetryAfter(categories []string) time.Duration
}
