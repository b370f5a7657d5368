package dedupgrpc

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/sentryotel"
)

// TrailerReported is the trailer metadata key by which a service tells its
// caller that it reported the error behind a call to Sentry.
//
// The protocol is that of deduphttp.HeaderReported: a service whose server
// runs [UnaryServerInterceptor] or [StreamServerInterceptor] sets
// "tracedup-reported: <event id>" (32 lowercase hex digits, the Sentry event
// id) in the trailer of a call when an error event of that call reached its
// deduplicator before the call ended. An event reaches the deduplicator after
// sampling and every BeforeSend hook, so a sampled-out or dropped event is
// never acknowledged. The id is that of the event the service captured or,
// when that event was itself a cascade, of the event it stands behind.
// Parameters after a ';' are reserved; callers ignore them.
//
// Only call services you run through the client interceptors: the trailer
// lets a downstream service silence its caller's errors.
const TrailerReported = "tracedup-reported"

// UnaryServerInterceptor returns a server interceptor that tells callers,
// in TrailerReported, when an error of their call was reported to t. It
// needs the call's span in its context: run otelgrpc.NewServerHandler as the
// server's stats handler. Put it first in the chain: an event captured by an
// interceptor before it in the chain (sentrygrpc's recovery, say) is captured
// after the trailer was decided, and is not acknowledged.
func UnaryServerInterceptor(t *dedup.Transport, options ...Option) grpc.UnaryServerInterceptor {
	cfg := newConfig(options)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		in := incomings.Get().(*dedup.Incoming)
		resp, err := cfg.unary(ctx, t, in, req, handler)
		// The call has ended: reuse in. (If the handler panicked, in is
		// dropped.)
		incomings.Put(in)
		return resp, err
	}
}

// incomings are the server interceptors' dedup.Incoming, pooled: one is in
// use from a call's start to its end, and nothing holds it after End.
var incomings = sync.Pool{New: func() any { return new(dedup.Incoming) }}

func (c *config) unary(ctx context.Context, t *dedup.Transport, in *dedup.Incoming, req any, handler grpc.UnaryHandler) (any, error) {
	in.Begin(ctx, t) // without a span, in tracks nothing
	defer in.End()
	resp, err := handler(ctx, req)
	if id := c.end(ctx, in, err); id != "" {
		_ = grpc.SetTrailer(ctx, metadata.Pairs(TrailerReported, id))
	}
	return resp, err
}

// StreamServerInterceptor is UnaryServerInterceptor for streams: the
// trailer is set when the handler returns.
func StreamServerInterceptor(t *dedup.Transport, options ...Option) grpc.StreamServerInterceptor {
	cfg := newConfig(options)
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		in := incomings.Get().(*dedup.Incoming)
		err := cfg.stream(t, in, srv, ss, handler)
		incomings.Put(in)
		return err
	}
}

func (c *config) stream(t *dedup.Transport, in *dedup.Incoming, srv any, ss grpc.ServerStream, handler grpc.StreamHandler) error {
	ctx := ss.Context()
	in.Begin(ctx, t)
	defer in.End()
	err := handler(srv, ss)
	if id := c.end(ctx, in, err); id != "" {
		ss.SetTrailer(metadata.Pairs(TrailerReported, id))
	}
	return err
}

// end captures err if it is to be, and returns the id to acknowledge the
// call with, if any.
func (c *config) end(ctx context.Context, in *dedup.Incoming, err error) string {
	id := in.Reported()
	if err != nil && id == "" && c.captures(status.Code(err)) {
		sentryotel.CaptureException(ctx, err)
		id = in.Reported()
	}
	return id
}
