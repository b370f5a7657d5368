package dedupgrpc_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tracedup/tracedup/dedup/dedupgrpc"
)

// The server interceptors pool their dedup.Incoming: a call's
// acknowledgement must not reach another call, however calls interleave,
// unary or streaming, and a handler that panics must leave the pool sound.
func TestPooledIncomingCarriesNothingOver(t *testing.T) {
	c := newCaller(t)
	p := newPayment(t, setup{recoverer: true}, c.transport, c.tp)
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			for i := range 40 {
				b := [...]behaviour{ok, declined, ok, panicking}[(g+i)%4]
				ctx, span := c.tp.Tracer("test").Start(context.Background(), "order")
				var md metadata.MD
				req := wrapperspb.String(string(b))
				if g%2 == 0 {
					_ = p.conn.Invoke(ctx, methodCharge, req, new(wrapperspb.StringValue), grpc.Trailer(&md))
				} else {
					_ = recvAll(ctx, p.conn, req, &md)
				}
				span.End()
				if b == ok {
					assert.Empty(t, md.Get(dedupgrpc.TrailerReported), "call %d of %d: acknowledged with another call's id", i, g)
				} else {
					assert.Len(t, md.Get(dedupgrpc.TrailerReported), 1, "call %d of %d (%s) is acknowledged", i, g, b)
				}
			}
		})
	}
	wg.Wait()
}
