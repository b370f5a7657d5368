package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/getsentry/sentry-go"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/status"

	"github.com/tracedup/tracedup/dedup/dedupgrpc"
)

// protocol is how the demo's services call each other.
type protocol string

const (
	protocolHTTP protocol = "http" // every service serves HTTP
	protocolGRPC protocol = "grpc" // every service serves gRPC
	// protocolMixed serves HTTP at the edge (the gateway) and gRPC behind
	// it, as many deployments do.
	protocolMixed protocol = "mixed"
)

// of returns what the named service serves under p.
func (p protocol) of(name string) protocol {
	switch {
	case p == protocolGRPC, p == protocolMixed && name != gateway:
		return protocolGRPC
	}
	return protocolHTTP
}

// The gRPC services are described by hand, with JSON for their messages,
// so that the demo needs no protoc: each service has one unary method that
// takes a checkout and returns a reply.
var grpcMethod = map[string]struct{ service, method string }{
	payment: {"cascade.Payment", "Charge"},
	order:   {"cascade.Order", "Place"},
	gateway: {"cascade.Gateway", "Checkout"},
}

// fullMethod is the method's name on the wire: /cascade.Payment/Charge.
func fullMethod(name string) string {
	m := grpcMethod[name]
	return "/" + m.service + "/" + m.method
}

// jsonCodec encodes the demo's gRPC messages as JSON. A client selects it
// with grpc.CallContentSubtype("json"); the server finds it by that name.
type jsonCodec struct{}

func (jsonCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
func (jsonCodec) Name() string                       { return "json" }

func init() { encoding.RegisterCodec(jsonCodec{}) }

// grpcCode is the code a service fails a call with: FailedPrecondition for
// a declined card, Unavailable (HTTP's 502) for a failed call to its
// downstream.
func grpcCode(err error) codes.Code {
	var declined *PaymentDeclined
	if errors.As(err, &declined) {
		return codes.FailedPrecondition
	}
	return codes.Unavailable
}

// serveGRPC serves s's handler over gRPC on ln.
func (s *service) serveGRPC(ln net.Listener, acknowledges bool) {
	m := grpcMethod[s.name]
	full := fullMethod(s.name)
	desc := grpc.ServiceDesc{
		ServiceName: m.service,
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: m.method,
			Handler: func(_ any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
				var c checkout
				if err := dec(&c); err != nil {
					return nil, err
				}
				h := func(ctx context.Context, _ any) (any, error) {
					if err := s.handle(ctx, c); err != nil {
						return nil, status.Error(grpcCode(err), err.Error())
					}
					return &reply{Status: answer[s.name]}, nil
				}
				if icpt == nil {
					return h(ctx, &c)
				}
				return icpt(ctx, &c, &grpc.UnaryServerInfo{Server: s, FullMethod: full}, h)
			},
		}},
	}
	// Server side: otelgrpc's stats handler starts the call's span
	// (continuing the caller's trace) before any interceptor runs; then
	// dedupgrpc's interceptor, first in the chain, which sets the
	// tracedup-reported trailer when the handler returns; then a hub per
	// call, so captures find the service's client.
	var chain []grpc.UnaryServerInterceptor
	if acknowledges {
		chain = append(chain, dedupgrpc.UnaryServerInterceptor(s.reporter.dedup))
	}
	client := s.reporter.client
	chain = append(chain, func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
		return next(sentry.SetHubOnContext(ctx, sentry.NewHub(client, sentry.NewScope())), req)
	})
	s.grpcSrv = grpc.NewServer(
		grpc.StatsHandler(otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(s.tp), otelgrpc.WithPropagators(propagator))),
		grpc.ChainUnaryInterceptor(chain...),
	)
	s.grpcSrv.RegisterService(&desc, s)
	go func() {
		defer close(s.served)
		_ = s.grpcSrv.Serve(ln)
	}()
}

// dialGRPC makes s call downstream over gRPC.
func (s *service) dialGRPC(downstream *service, crossService bool) error {
	// Client side: otelgrpc's stats handler propagates the trace;
	// dedupgrpc's interceptor reads the downstream's tracedup-reported
	// trailer and records it for the call's trace.
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(s.tp), otelgrpc.WithPropagators(propagator))),
	}
	if crossService {
		opts = append(opts, grpc.WithUnaryInterceptor(dedupgrpc.UnaryClientInterceptor(s.reporter.dedup)))
	}
	conn, err := dialJSON(downstream.addr, opts...)
	if err != nil {
		return err
	}
	s.conn = conn
	method := fullMethod(downstream.name)
	s.call = func(ctx context.Context, c checkout) (int, error) {
		ctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		if err := conn.Invoke(ctx, method, &c, new(reply)); err != nil {
			return 0, err
		}
		return http.StatusOK, nil
	}
	return nil
}

// dialJSON connects to a demo service's gRPC server at addr.
func dialJSON(addr string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	opts = append(opts, grpc.WithDefaultCallOptions(grpc.CallContentSubtype(jsonCodec{}.Name())))
	conn, err := grpc.NewClient("passthrough:///"+addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return conn, nil
}
