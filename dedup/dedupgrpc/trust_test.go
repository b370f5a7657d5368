package dedupgrpc_test

import (
	"context"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tracedup/tracedup/dedup/dedupgrpc"
)

const zeroID = "00000000000000000000000000000000"

// A server outside the fleet that answers a failed call with a
// tracedup-reported trailer of its making silences nothing: the caller
// reports its own error, and counts the answer as untrusted.
func TestStrangerTrailerSilencesNothing(t *testing.T) {
	const n = 3
	for _, answer := range []string{zeroID, zeroID + ";m=" + zeroID} {
		for kind, streaming := range kinds {
			t.Run(answer+"/"+kind, func(t *testing.T) {
				c, acks, fromCaller, _ := callN(t, setup{noInterceptor: true, stranger: answer}, streaming, declined, n)
				assert.Equal(t, slices.Repeat([]int{1}, n), acks, "the stranger's trailers arrived")
				assert.Len(t, fromCaller, n, "the caller reports each of its errors")
				s := c.transport.Stats()
				assert.Zero(t, s.Cascades, "%+v", s)
				assert.Equal(t, uint64(n), s.Untrusted, "the stranger's answers are counted")
			})
		}
	}
}

// A client that does not announce itself as a caller of the fleet (an
// external one), or announces itself falsely, gets no tracedup-reported
// trailer, though the server reported the error of its call.
func TestUnannouncedClientGetsNoTrailer(t *testing.T) {
	for _, announcement := range []string{"", "n=" + zeroID + ";m=" + zeroID} {
		for kind, streaming := range kinds {
			t.Run(announcement+"/"+kind, func(t *testing.T) {
				c := newCaller(t)
				p := newPayment(t, setup{plainClient: true}, c.transport, c.tp)
				ctx, span := c.tp.Tracer("test").Start(context.Background(), "external")
				defer span.End()
				if announcement != "" {
					ctx = metadata.AppendToOutgoingContext(ctx, dedupgrpc.MetadataCaller, announcement)
				}
				var md metadata.MD
				req := wrapperspb.String(string(declined))
				var err error
				if streaming {
					err = recvAll(ctx, p.conn, req, &md)
				} else {
					err = p.conn.Invoke(ctx, methodCharge, req, new(wrapperspb.StringValue), grpc.Trailer(&md))
				}
				require.Error(t, err)
				assert.Empty(t, md.Get(dedupgrpc.TrailerReported))
				_, fromPayment := sent(t, c, p)
				assert.Len(t, fromPayment, 1, "the server reported the error")
			})
		}
	}
}
