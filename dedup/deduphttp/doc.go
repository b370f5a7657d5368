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
// The caller announces itself in the request header Tracedup-Caller, and a
// service answers in the response header Tracedup-Reported only a caller of
// its fleet (by default the services whose Sentry DSN names the same host;
// see [dedup.WithFleetKey]): a server outside the fleet cannot silence the
// caller's errors, and a client outside it is told nothing. The protocol
// and its trust are described in package dedup ("Across services"), and the
// exact rule by which a caller applies an acknowledgement at
// [dedup.Transport.Outgoing]; gRPC has the same protocol in the module
// github.com/tracedup/tracedup/dedup/dedupgrpc.
package deduphttp
