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

// TrailerReported is the trailer metadata key that carries a server's
// answer, and MetadataCaller the request metadata key by which a caller
// announces itself: the protocol is package dedup's (see "Across services"
// there), the same as deduphttp's.
const (
	TrailerReported = dedup.TrailerReported
	MetadataCaller  = dedup.MetadataCaller
)

// UnaryServerInterceptor returns a server interceptor that tells callers,
// in TrailerReported, when an error of their call was reported to t. It
// answers only a call whose MetadataCaller announces a caller of t's fleet
// (one that calls through the client interceptors): any other client never
// sees the trailer. It
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
	if v := c.end(ctx, in, err); v != "" {
		_ = grpc.SetTrailer(ctx, metadata.Pairs(TrailerReported, v))
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
	if v := c.end(ctx, in, err); v != "" {
		ss.SetTrailer(metadata.Pairs(TrailerReported, v))
	}
	return err
}

// end captures err if it is to be, and returns the answer to the caller,
// if any: only a caller that announced itself is answered. The
// announcement is read only when there is something to answer.
func (c *config) end(ctx context.Context, in *dedup.Incoming, err error) string {
	id := in.Reported()
	if err != nil && id == "" && c.captures(status.Code(err)) {
		sentryotel.CaptureException(ctx, err)
		id = in.Reported()
	}
	if id == "" {
		return ""
	}
	md, _ := metadata.FromIncomingContext(ctx)
	v := md[MetadataCaller]
	if len(v) == 0 {
		return ""
	}
	return in.Answer(v[0])
}
