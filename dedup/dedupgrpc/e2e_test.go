package dedupgrpc_test

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/dedup/dedupgrpc"
	"github.com/tracedup/tracedup/internal/sentrytest"
	"github.com/tracedup/tracedup/sentryotel"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The test service, described by hand (no protoc): Charge is unary, Charges
// streams from the server; both take and return a wrapperspb.StringValue.
const (
	methodCharge  = "/test.Payment/Charge"
	methodCharges = "/test.Payment/Charges"
)

// behaviour is what the payment handler does with a request whose value is
// its key.
type behaviour string

const (
	ok          behaviour = "ok"        // answers
	declined    behaviour = "declined"  // captures an error, returns FailedPrecondition
	dropped     behaviour = "dropped"   // captures an error that BeforeSend drops, returns FailedPrecondition
	internal    behaviour = "internal"  // returns Internal without capturing
	notFound    behaviour = "not-found" // returns NotFound without capturing
	panicking   behaviour = "panic"     // panics
	errDeclined           = "card declined"
)

type paymentServer interface{}

var paymentDesc = grpc.ServiceDesc{
	ServiceName: "test.Payment",
	HandlerType: (*paymentServer)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Charge",
		Handler: func(srv any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
			req := new(wrapperspb.StringValue)
			if err := dec(req); err != nil {
				return nil, err
			}
			h := func(ctx context.Context, req any) (any, error) {
				return srv.(*payment).charge(ctx, req.(*wrapperspb.StringValue))
			}
			if icpt == nil {
				return h(ctx, req)
			}
			return icpt(ctx, req, &grpc.UnaryServerInfo{Server: srv, FullMethod: methodCharge}, h)
		},
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "Charges",
		ServerStreams: true,
		Handler: func(srv any, ss grpc.ServerStream) error {
			req := new(wrapperspb.StringValue)
			if err := ss.RecvMsg(req); err != nil {
				return err
			}
			resp, err := srv.(*payment).charge(ss.Context(), req)
			if err != nil {
				return err
			}
			for range 2 {
				if err := ss.SendMsg(resp); err != nil {
					return err
				}
			}
			return nil
		},
	}},
}

// payment is a gRPC server whose handlers report through a real sentry-go
// client into a dedup.Transport of its own.
type payment struct {
	transport *dedup.Transport
	inner     *sentrytest.Transport
	client    *sentry.Client
	conn      *grpc.ClientConn // the caller's connection to it
}

type dropKey struct{}

func (p *payment) charge(ctx context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
	switch behaviour(req.GetValue()) {
	case declined:
		sentryotel.CaptureException(ctx, errors.New(errDeclined))
		return nil, status.Error(codes.FailedPrecondition, errDeclined)
	case dropped:
		sentryotel.CaptureException(context.WithValue(ctx, dropKey{}, true), errors.New(errDeclined))
		return nil, status.Error(codes.FailedPrecondition, errDeclined)
	case internal:
		return nil, status.Error(codes.Internal, "ledger unreachable")
	case notFound:
		return nil, status.Error(codes.NotFound, "no such card")
	case panicking:
		panic("nil ledger")
	}
	return wrapperspb.String("paid"), nil
}

// setup says how the payment server is run.
type setup struct {
	noInterceptor bool // the server does not acknowledge
	// bare: no dedupgrpc interceptor on either side (the benchmark's
	// baseline).
	bare    bool
	options []dedupgrpc.Option
	// recoverer is an interceptor after dedupgrpc's in the chain that
	// recovers panics and captures them, as sentrygrpc's does.
	recoverer bool
	// stranger, when set, is a trailer tracedup-reported that the server
	// sets on every call, as any server outside the fleet could.
	stranger string
	// plainClient: the caller's connection has no dedupgrpc interceptor
	// (an external client), though the server has.
	plainClient bool
}

// newPayment starts a payment server over bufconn and a caller's connection
// to it whose client interceptors record into caller.
func newPayment(t testing.TB, s setup, caller *dedup.Transport, callerTP *sdktrace.TracerProvider) *payment {
	t.Helper()
	tp := sentrytest.TracerProvider("payment")
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	p := &payment{inner: sentrytest.NewTransport()}
	p.transport = dedup.NewTransport(p.inner)
	client, err := sentry.NewClient(sentryotel.WrapOptions(sentry.ClientOptions{
		Transport: p.transport,
		BeforeSend: func(ev *sentry.Event, hint *sentry.EventHint) *sentry.Event {
			if hint.Context != nil && hint.Context.Value(dropKey{}) != nil {
				return nil // sampled out
			}
			return ev
		},
	}))
	require.NoError(t, err)
	t.Cleanup(client.Close)
	p.client = client

	// A hub per call first, as a service sets it up: the interceptors
	// after it capture with it.
	unary := []grpc.UnaryServerInterceptor{func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		return handler(sentry.SetHubOnContext(ctx, sentry.NewHub(client, sentry.NewScope())), req)
	}}
	stream := []grpc.StreamServerInterceptor{func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, &hubStream{ss, sentry.SetHubOnContext(ss.Context(), sentry.NewHub(client, sentry.NewScope()))})
	}}
	if !s.noInterceptor && !s.bare {
		unary = append(unary, dedupgrpc.UnaryServerInterceptor(p.transport, s.options...))
		stream = append(stream, dedupgrpc.StreamServerInterceptor(p.transport, s.options...))
	}
	if s.recoverer {
		unary = append(unary, recoverUnary())
		stream = append(stream, recoverStream())
	}
	if s.stranger != "" {
		unary = append(unary, func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			_ = grpc.SetTrailer(ctx, metadata.Pairs(dedupgrpc.TrailerReported, s.stranger))
			return handler(ctx, req)
		})
		stream = append(stream, func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			ss.SetTrailer(metadata.Pairs(dedupgrpc.TrailerReported, s.stranger))
			return handler(srv, ss)
		})
	}
	srv := grpc.NewServer(
		grpc.StatsHandler(otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(tp), otelgrpc.WithPropagators(propagation.TraceContext{}))),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
	)
	srv.RegisterService(&paymentDesc, p)
	ln := bufconn.Listen(1 << 16)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-served
	})

	opts := []grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ln.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(callerTP), otelgrpc.WithPropagators(propagation.TraceContext{}))),
	}
	if !s.bare && !s.plainClient {
		opts = append(opts,
			grpc.WithUnaryInterceptor(dedupgrpc.UnaryClientInterceptor(caller)),
			grpc.WithStreamInterceptor(dedupgrpc.StreamClientInterceptor(caller)))
	}
	conn, err := grpc.NewClient("passthrough:///payment", opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	p.conn = conn
	return p
}

// recoverUnary and recoverStream recover a handler's panic, capture it on
// the call's context and fail the call with Internal, as sentrygrpc's
// interceptors do (hub.RecoverWithContext).
func recoverUnary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer recoverWith(ctx, &err)
		return handler(ctx, req)
	}
}

func recoverStream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer recoverWith(ss.Context(), &err)
		return handler(srv, ss)
	}
}

func recoverWith(ctx context.Context, err *error) {
	if r := recover(); r != nil {
		sentry.GetHubFromContext(ctx).RecoverWithContext(ctx, r)
		*err = status.Error(codes.Internal, "internal server error")
	}
}

// hubStream is a server stream with a hub in its context.
type hubStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *hubStream) Context() context.Context { return s.ctx }

// caller is the calling service: its own tracer provider, Sentry client and
// dedup.Transport.
type caller struct {
	tp        *sdktrace.TracerProvider
	transport *dedup.Transport
	inner     *sentrytest.Transport
	client    *sentry.Client
}

func newCaller(t testing.TB) *caller {
	t.Helper()
	c := &caller{tp: sentrytest.TracerProvider("order"), inner: sentrytest.NewTransport()}
	t.Cleanup(func() { _ = c.tp.Shutdown(context.Background()) })
	c.transport = dedup.NewTransport(c.inner)
	client, err := sentry.NewClient(sentryotel.WrapOptions(sentry.ClientOptions{Transport: c.transport}))
	require.NoError(t, err)
	t.Cleanup(client.Close)
	c.client = client
	return c
}

// call makes the calls in a span of a fresh trace of the caller, in order,
// unary or streaming, and captures the caller's own error in that span if
// the last one failed. It returns the trailers.
func (c *caller) call(t *testing.T, conn *grpc.ClientConn, streaming bool, values ...behaviour) []metadata.MD {
	t.Helper()
	ctx, span := c.tp.Tracer("test").Start(context.Background(), "order")
	defer span.End()
	var trailers []metadata.MD
	var err error
	for _, v := range values {
		var md metadata.MD
		if streaming {
			err = recvAll(ctx, conn, wrapperspb.String(string(v)), &md)
		} else {
			err = conn.Invoke(ctx, methodCharge, wrapperspb.String(string(v)), new(wrapperspb.StringValue), grpc.Trailer(&md))
		}
		trailers = append(trailers, md)
	}
	if err != nil {
		hub := sentry.NewHub(c.client, sentry.NewScope())
		sentryotel.CaptureException(sentry.SetHubOnContext(ctx, hub), errors.New("order failed: "+err.Error()))
	}
	return trailers
}

// recvAll opens a server stream, reads it to its end and returns its status.
func recvAll(ctx context.Context, conn *grpc.ClientConn, req any, trailer *metadata.MD) error {
	desc := &grpc.StreamDesc{StreamName: "Charges", ServerStreams: true}
	cs, err := conn.NewStream(ctx, desc, methodCharges)
	if err != nil {
		return err
	}
	if err := cs.SendMsg(req); err != nil {
		return err
	}
	if err := cs.CloseSend(); err != nil {
		return err
	}
	for {
		err := cs.RecvMsg(new(wrapperspb.StringValue))
		if err != nil {
			*trailer = cs.Trailer()
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// sent flushes the transports and returns what reached "Sentry" from each.
func sent(t *testing.T, c *caller, p *payment) (fromCaller, fromPayment []*sentry.Event) {
	t.Helper()
	require.True(t, p.transport.Flush(5*time.Second))
	require.True(t, c.transport.Flush(5*time.Second))
	for name, tr := range map[string]*dedup.Transport{"caller": c.transport, "payment": p.transport} {
		s := tr.Stats()
		assert.Equal(t, s.Received, s.Emitted+s.Suppressed+s.Pending, "%s: %+v", name, s)
	}
	return c.inner.Events(), p.inner.Events()
}

func exceptionValue(ev *sentry.Event) string {
	if len(ev.Exception) == 0 {
		return ev.Message
	}
	return ev.Exception[len(ev.Exception)-1].Value
}

// callN makes n calls that each end as value, each in a trace of its own,
// from a new caller to a payment server run as s, and returns the caller,
// how many acknowledgements each call's trailer held, and what each side
// sent.
func callN(t *testing.T, s setup, streaming bool, value behaviour, n int) (c *caller, acks []int, fromCaller, fromPayment []*sentry.Event) {
	t.Helper()
	c = newCaller(t)
	p := newPayment(t, s, c.transport, c.tp)
	for range n {
		tr := c.call(t, p.conn, streaming, value)
		acks = append(acks, len(tr[0].Get(dedupgrpc.TrailerReported)))
	}
	fromCaller, fromPayment = sent(t, c, p)
	return c, acks, fromCaller, fromPayment
}

var kinds = map[string]bool{"unary": false, "stream": true}

func TestFailedCallsReportOnlyTheOrigin(t *testing.T) {
	const n = 5
	for kind, streaming := range kinds {
		t.Run(kind, func(t *testing.T) {
			c, acks, fromCaller, fromPayment := callN(t, setup{}, streaming, declined, n)
			assert.Equal(t, slices.Repeat([]int{1}, n), acks, "acknowledgements in the trailers")
			assert.Empty(t, fromCaller, "the caller's cascades are suppressed")
			require.Len(t, fromPayment, n, "one event per failed call")
			for _, ev := range fromPayment {
				assert.Equal(t, errDeclined, exceptionValue(ev))
			}
			assert.Equal(t, uint64(n), c.transport.Stats().Cascades)
		})
	}
}

func TestUnacknowledgedCallsLeaveTheCallerReporting(t *testing.T) {
	const n = 3
	tests := map[string]struct {
		setup setup
		value behaviour
	}{
		"server without the interceptor": {setup{noInterceptor: true}, declined},
		"sampled-out event":              {setup{}, dropped},
		"error returned, not captured":   {setup{}, internal},
		"error of a code not captured":   {setup{options: []dedupgrpc.Option{dedupgrpc.WithCaptureErrors()}}, notFound},
	}
	for name, tt := range tests {
		for kind, streaming := range kinds {
			t.Run(name+"/"+kind, func(t *testing.T) {
				c, acks, fromCaller, _ := callN(t, tt.setup, streaming, tt.value, n)
				assert.Equal(t, make([]int, n), acks, "acknowledgements in the trailers")
				assert.Len(t, fromCaller, n, "the caller reports each of its errors")
				assert.Zero(t, c.transport.Stats().Cascades)
			})
		}
	}
}

func TestCapturedErrorsAreAcknowledged(t *testing.T) {
	const n = 3
	tests := map[string]struct {
		setup setup
		value behaviour
		want  string // the origin's exception value
	}{
		"returned Internal, WithCaptureErrors()": {
			setup{options: []dedupgrpc.Option{dedupgrpc.WithCaptureErrors()}}, internal, "ledger unreachable"},
		"returned NotFound, WithCaptureErrors(NotFound)": {
			setup{options: []dedupgrpc.Option{dedupgrpc.WithCaptureErrors(codes.NotFound)}}, notFound, "no such card"},
		"panic recovered after dedupgrpc in the chain": {
			setup{recoverer: true}, panicking, "nil ledger"},
		"panic recovered, WithCaptureErrors: captured once": {
			setup{recoverer: true, options: []dedupgrpc.Option{dedupgrpc.WithCaptureErrors()}}, panicking, "nil ledger"},
		"captured by the handler, WithCaptureErrors: captured once": {
			setup{options: []dedupgrpc.Option{dedupgrpc.WithCaptureErrors(codes.FailedPrecondition)}}, declined, errDeclined},
	}
	for name, tt := range tests {
		for kind, streaming := range kinds {
			t.Run(name+"/"+kind, func(t *testing.T) {
				_, acks, fromCaller, fromPayment := callN(t, tt.setup, streaming, tt.value, n)
				assert.Equal(t, slices.Repeat([]int{1}, n), acks, "acknowledgements in the trailers")
				assert.Empty(t, fromCaller, "the caller's cascades are suppressed")
				require.Len(t, fromPayment, n, "one event per failed call")
				for _, ev := range fromPayment {
					assert.Contains(t, exceptionValue(ev), tt.want)
				}
			})
		}
	}
}

func TestRetryThatSucceedsSupersedes(t *testing.T) {
	for kind, streaming := range kinds {
		t.Run(kind, func(t *testing.T) {
			c := newCaller(t)
			p := newPayment(t, setup{}, c.transport, c.tp)
			// Declined and acknowledged, then a retry that succeeds, then an
			// error of the caller's own in the same span.
			ctx, span := c.tp.Tracer("test").Start(context.Background(), "order")
			var err error
			for _, v := range []behaviour{declined, ok} {
				if streaming {
					var md metadata.MD
					err = recvAll(ctx, p.conn, wrapperspb.String(string(v)), &md)
				} else {
					err = p.conn.Invoke(ctx, methodCharge, wrapperspb.String(string(v)), new(wrapperspb.StringValue))
				}
			}
			require.NoError(t, err, "the retry succeeded")
			hub := sentry.NewHub(c.client, sentry.NewScope())
			sentryotel.CaptureException(sentry.SetHubOnContext(ctx, hub), errors.New("order's own bug"))
			span.End()

			fromCaller, fromPayment := sent(t, c, p)
			require.Len(t, fromCaller, 1, "the caller's own later error is sent")
			assert.Equal(t, "order's own bug", exceptionValue(fromCaller[0]))
			assert.Len(t, fromPayment, 1)
			assert.Zero(t, c.transport.Stats().Cascades)
		})
	}
}
