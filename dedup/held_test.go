package dedup_test

import (
	"runtime"
	"testing"
	"testing/synctest"
	"time"
	"weak"

	"github.com/getsentry/sentry-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/internal/sentrytest"
	"github.com/tracedup/tracedup/rootcause"
)

// sendChain sends payment's error, then order's and the gateway's on the
// spans enclosing it, each with its ancestors as the span processor stamps
// them, and returns weak pointers to the three events.
func sendChain(tr *dedup.Transport) [3]weak.Pointer[sentry.Event] {
	payment := errEvent(traceA, "00000000000000c3", "00000000000000b2", "payment", "*main.PaymentDeclined")
	payment.Contexts["tracedup"] = sentry.Context{"ancestors": "00000000000000b2,00000000000000a1"}
	order := errEvent(traceA, "00000000000000b2", "00000000000000a1", "order", "*main.ServiceCallFailed")
	gateway := errEvent(traceA, "00000000000000a1", "", "gateway", "*main.DownstreamError")
	ptrs := [3]weak.Pointer[sentry.Event]{weak.Make(payment), weak.Make(order), weak.Make(gateway)}
	for _, ev := range []*sentry.Event{payment, order, gateway} {
		tr.SendEvent(ev)
	}
	return ptrs
}

// TestKnownSymptomsAreNotHeld: order's and the gateway's errors follow from
// payment's as they arrive, so their events are let go while the window is
// still open.
func TestKnownSymptomsAreNotHeld(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inner := sentrytest.NewTransport()
		tr := dedup.NewTransport(inner)
		defer tr.Close()
		ptrs := sendChain(tr)
		runtime.GC()
		assert.NotNil(t, ptrs[0].Value(), "payment's event is held: it is to be sent")
		assert.Nil(t, ptrs[1].Value(), "order's event was let go")
		assert.Nil(t, ptrs[2].Value(), "the gateway's event was let go")
		st := tr.Stats()
		assert.Equal(t, uint64(3), st.Pending)

		time.Sleep(dedup.DefaultWindow)
		synctest.Wait()
		sent := inner.Events()
		require.Len(t, sent, 1)
		assert.Equal(t, "*main.PaymentDeclined", sent[0].Exception[0].Type)
		assert.Equal(t, "2", sent[0].Tags[dedup.TagSuppressed], "it stands for both")
		st = tr.Stats()
		assertInvariant(t, st)
		assert.Equal(t, dedup.Stats{Received: 3, Emitted: 1, Suppressed: 2}, st)
	})
}

// TestStrategyNamingASymptomSendsItsCause: a strategy that names a symptom
// whose event was let go gets the error it follows from sent in its place.
func TestStrategyNamingASymptomSendsItsCause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inner := sentrytest.NewTransport()
		last := rootcause.StrategyFunc(func(errs []rootcause.Error) int { return len(errs) - 1 })
		tr := dedup.NewTransport(inner, dedup.WithStrategy(last))
		defer tr.Close()
		sendChain(tr)
		time.Sleep(dedup.DefaultWindow)
		synctest.Wait()
		sent := inner.Events()
		require.Len(t, sent, 1)
		assert.Equal(t, "*main.PaymentDeclined", sent[0].Exception[0].Type)
		assert.Equal(t, "2", sent[0].Tags[dedup.TagSuppressed])
		st := tr.Stats()
		assertInvariant(t, st)
		assert.Equal(t, dedup.Stats{Received: 3, Emitted: 1, Suppressed: 2}, st)
	})
}
