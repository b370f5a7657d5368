package dedup

import (
	"testing"
	"time"

	"github.com/getsentry/sentry-go"

	"github.com/tracedup/tracedup/internal/sentrytest"
)

// A SendEvent that counted its event pending before Close began, but queues
// it for the emitter only after Close stopped the emitter, must not leave the
// event Pending forever: Close promises that what it could not hand over is
// counted Abandoned.
func TestSendEventRacingCloseLeavesNothingPending(t *testing.T) {
	inner := sentrytest.NewTransport()
	tr := NewTransport(inner, WithWindow(time.Hour))
	counted := make(chan struct{})
	closed := make(chan struct{})
	testHookBeforePush = func() {
		close(counted)
		<-closed
	}
	defer func() { testHookBeforePush = nil }()

	sent := make(chan struct{})
	go func() {
		defer close(sent)
		tr.SendEvent(sentry.NewEvent()) // passes through
	}()
	<-counted
	tr.Close()
	close(closed)
	<-sent

	s := tr.Stats()
	if s.Received != s.Emitted+s.Suppressed+s.Pending+s.Dropped {
		t.Fatalf("invariant broken: %+v", s)
	}
	if s.Pending != 0 {
		t.Errorf("an event stayed Pending after Close and SendEvent returned: %+v", s)
	}
	if s.Abandoned != 1 {
		t.Errorf("Abandoned = %d, want 1: %+v", s.Abandoned, s)
	}
	if n := len(inner.Events()); n != 0 {
		t.Errorf("%d events reached the closed inner transport", n)
	}
}
