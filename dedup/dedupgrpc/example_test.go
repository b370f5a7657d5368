package dedupgrpc_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/getsentry/sentry-go"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/dedup/dedupgrpc"
	"github.com/tracedup/tracedup/internal/sentrytest"
	"github.com/tracedup/tracedup/sentryotel"
)

// failing is a gRPC service whose handler fails with a server fault; it
// does not capture the error itself.
type failing struct {
	grpc_health_v1.UnimplementedHealthServer
}

func (failing) Check(context.Context, *grpc_health_v1.HealthCheckRequest) (*grpc_health_v1.HealthCheckResponse, error) {
	return nil, status.Error(codes.Unavailable, "ledger unreachable")
}

// A server reports the errors its handlers return with a server fault
// (WithCaptureErrors) and acknowledges them in the trailer; its caller's
// client interceptor reads the trailer, so the caller's own error, which
// follows from that call, is a cascade and is not sent again.
func Example() {
	// The server: otelgrpc's stats handler puts the call's span in the
	// context; dedupgrpc's interceptor comes first in the chain.
	serverEvents := sentrytest.NewTransport()
	serverDedup := dedup.NewTransport(serverEvents)
	serverClient, _ := sentry.NewClient(sentryotel.WrapOptions(sentry.ClientOptions{Transport: serverDedup}))
	defer serverClient.Close()
	serverTP := sdktrace.NewTracerProvider()
	srv := grpc.NewServer(
		grpc.StatsHandler(otelgrpc.NewServerHandler(
			otelgrpc.WithTracerProvider(serverTP), otelgrpc.WithPropagators(propagation.TraceContext{}))),
		grpc.ChainUnaryInterceptor(
			func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
				// A hub per call, as sentrygrpc's interceptor sets up.
				return next(sentry.SetHubOnContext(ctx, sentry.NewHub(serverClient, sentry.NewScope())), req)
			},
			dedupgrpc.UnaryServerInterceptor(serverDedup, dedupgrpc.WithCaptureErrors()),
		),
	)
	grpc_health_v1.RegisterHealthServer(srv, failing{})
	ln := bufconn.Listen(1 << 16)
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()

	// The caller.
	callerEvents := sentrytest.NewTransport()
	callerDedup := dedup.NewTransport(callerEvents)
	callerClient, _ := sentry.NewClient(sentryotel.WrapOptions(sentry.ClientOptions{Transport: callerDedup}))
	defer callerClient.Close()
	callerTP := sdktrace.NewTracerProvider()
	conn, _ := grpc.NewClient("passthrough:///ledger",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ln.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(
			otelgrpc.WithTracerProvider(callerTP), otelgrpc.WithPropagators(propagation.TraceContext{}))),
		grpc.WithUnaryInterceptor(dedupgrpc.UnaryClientInterceptor(callerDedup)),
	)
	defer conn.Close()

	ctx, span := callerTP.Tracer("order").Start(context.Background(), "place order")
	_, err := grpc_health_v1.NewHealthClient(conn).Check(ctx, &grpc_health_v1.HealthCheckRequest{})
	ctx = sentry.SetHubOnContext(ctx, sentry.NewHub(callerClient, sentry.NewScope()))
	sentryotel.CaptureException(ctx, errors.New("place order: "+status.Convert(err).Message()))
	span.End()

	serverClient.Flush(time.Second)
	callerClient.Flush(time.Second)
	for _, ev := range serverEvents.Events() {
		fmt.Println("server sent:", ev.Exception[0].Value)
	}
	fmt.Println("caller sent:", len(callerEvents.Events()), "events; cascades:", callerDedup.Stats().Cascades)
	// Output:
	// server sent: rpc error: code = Unavailable desc = ledger unreachable
	// caller sent: 0 events; cascades: 1
}
