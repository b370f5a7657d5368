package dedupgrpc

import (
	"context"
	"sync"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/tracedup/tracedup/dedup"
)

// UnaryClientInterceptor returns a client interceptor that records with t
// the outcome of each call: the event id a server of t's fleet acknowledged
// in TrailerReported, or none. It announces the caller in MetadataCaller and
// honours only an answer bound to that announcement: a server outside the
// fleet cannot silence the caller's errors (what it sends is counted in
// dedup.Stats.Untrusted). Calls are told apart by their full method: a
// later call to the same method in the same trace supersedes an earlier one
// (see [dedup.Transport.Outgoing]). The call's context must carry the
// caller's span. It composes with otelgrpc.NewClientHandler.
func UnaryClientInterceptor(t *dedup.Transport) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if !trace.SpanContextFromContext(ctx).IsValid() {
			// Outgoing records nothing without a span: nothing to announce.
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		ack := t.Call()
		c := calls.Get().(*call)
		c.opts = append(append(c.opts[:0], opts...), grpc.Trailer(&c.trailer))
		err := invoker(metadata.AppendToOutgoingContext(ctx, MetadataCaller, ack.Announcement()), method, req, reply, cc, c.opts...)
		t.Outgoing(ctx, method, reported(ack, c.trailer))
		c.reset()
		calls.Put(c)
		return err
	}
}

// call is the per-call state of UnaryClientInterceptor, pooled: gRPC needs
// the trailer's address and a slice of call options for every call.
type call struct {
	trailer metadata.MD
	opts    []grpc.CallOption
}

func (c *call) reset() {
	c.trailer = nil
	clear(c.opts)
	c.opts = c.opts[:0]
}

var calls = sync.Pool{New: func() any { return new(call) }}

// reported returns the event id acknowledged to ack in trailer, verified,
// or "".
func reported(ack dedup.Call, trailer metadata.MD) string {
	v := trailer[TrailerReported]
	if len(v) == 0 {
		return ""
	}
	return ack.Reported(v[0])
}

// StreamClientInterceptor is UnaryClientInterceptor for streams. A stream's
// outcome is recorded when it ends as its caller sees it: when RecvMsg
// returns an error (io.EOF on success) or, on a stream whose server sends one
// message, when that message is received. A stream abandoned before then is
// not recorded; one that failed to start is recorded as unacknowledged.
func StreamClientInterceptor(t *dedup.Transport) grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		if !trace.SpanContextFromContext(ctx).IsValid() {
			return streamer(ctx, desc, cc, method, opts...)
		}
		ack := t.Call()
		cs, err := streamer(metadata.AppendToOutgoingContext(ctx, MetadataCaller, ack.Announcement()), desc, cc, method, opts...)
		if err != nil {
			t.Outgoing(ctx, method, "")
			return nil, err
		}
		return &clientStream{ClientStream: cs, t: t, ack: ack, ctx: ctx, method: method, serverStreams: desc.ServerStreams}, nil
	}
}

// clientStream records the stream's outcome once, when it ends.
type clientStream struct {
	grpc.ClientStream
	t             *dedup.Transport
	ack           dedup.Call
	ctx           context.Context
	method        string
	serverStreams bool
	once          sync.Once
}

func (s *clientStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err != nil || !s.serverStreams {
		// The stream is over: its trailer is there, or there is none.
		s.once.Do(func() { s.t.Outgoing(s.ctx, s.method, reported(s.ack, s.ClientStream.Trailer())) })
	}
	return err
}
