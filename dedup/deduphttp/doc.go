// Package deduphttp carries the deduplicator's acknowledgement over HTTP: a
// service tells its caller, in a response header, that it reported the error
// behind a failed call, and the caller counts its own errors that follow from
// that call as a cascade instead of reporting them again.
//
// Wrap each service's handler with [NewHandler] inside otelhttp's, and the
// transport of the client that calls your own services with [NewTransport]:
//
//	t := dedup.NewTransport(sentry.NewHTTPTransport())
//	handler := otelhttp.NewHandler(deduphttp.NewHandler(sentryHandler.Handle(mux), t), "order")
//	client := &http.Client{Transport: otelhttp.NewTransport(deduphttp.NewTransport(nil, t))}
//
// The exact rule by which a caller applies an acknowledgement is in package
// dedup (see [dedup.Transport.Outgoing]); gRPC has the same protocol in the
// module github.com/tracedup/tracedup/dedup/dedupgrpc.
package deduphttp
