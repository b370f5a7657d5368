package dedupgrpc_test

import (
	"context"
	"testing"

	"google.golang.org/protobuf/types/known/wrapperspb"
)

// BenchmarkUnaryCall is the interceptors' cost on the success path: a unary
// call over bufconn between an otelgrpc-instrumented client and server (a
// real SDK tracer on each side, every span sampled and recorded, and a hub
// per call on the server), without dedupgrpc and with its client and server
// interceptors. Compare the two in one run:
//
//	go test -run '^$' -bench UnaryCall -count 6 ./dedup/dedupgrpc | benchstat -col /interceptors -
func BenchmarkUnaryCall(b *testing.B) {
	for _, bb := range []struct {
		name  string
		setup setup
	}{
		{"interceptors=otelgrpc", setup{bare: true}},
		{"interceptors=otelgrpc+dedupgrpc", setup{}},
	} {
		b.Run(bb.name, func(b *testing.B) {
			c := newCaller(b)
			p := newPayment(b, bb.setup, c.transport, c.tp)
			ctx, span := c.tp.Tracer("bench").Start(context.Background(), "order")
			defer span.End()
			req := wrapperspb.String(string(ok))
			resp := new(wrapperspb.StringValue)
			b.ReportAllocs()
			for b.Loop() {
				if err := p.conn.Invoke(ctx, methodCharge, req, resp); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
