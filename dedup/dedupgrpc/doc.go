// Package dedupgrpc carries the deduplicator's acknowledgement over gRPC: a
// service tells its caller, in the trailer metadata of a failed call, that it
// reported the error behind it, and the caller counts its own errors that
// follow from that call as a cascade instead of reporting them again.
//
// It is the gRPC twin of package deduphttp and speaks the same protocol: the
// caller announces itself in the request metadata tracedup-caller, and the
// server answers in the trailer tracedup-reported only a caller of its
// fleet. The protocol and its trust are described in package dedup ("Across
// services"), the rule a caller applies at [dedup.Transport.Outgoing]. It
// lives in a module of its own so that programs without gRPC do not build it.
//
// Server side, put the interceptors first in the chain, before sentrygrpc's
// (which recovers panics), and run otelgrpc's stats handler so that the
// call's span is in the context:
//
//	t := dedup.NewTransport(sentry.NewHTTPTransport())
//	srv := grpc.NewServer(
//		grpc.StatsHandler(otelgrpc.NewServerHandler()),
//		grpc.ChainUnaryInterceptor(dedupgrpc.UnaryServerInterceptor(t, dedupgrpc.WithCaptureErrors())),
//		grpc.ChainStreamInterceptor(dedupgrpc.StreamServerInterceptor(t, dedupgrpc.WithCaptureErrors())),
//	)
//
// Client side, on the connections to your own services:
//
//	conn, err := grpc.NewClient(target,
//		grpc.WithStatsHandler(otelgrpc.NewClientHandler()),
//		grpc.WithUnaryInterceptor(dedupgrpc.UnaryClientInterceptor(t)),
//		grpc.WithStreamInterceptor(dedupgrpc.StreamClientInterceptor(t)),
//	)
package dedupgrpc
