//go:build !race

// The race detector makes sync.Pool drop items at random: these tests count
// allocations only without it.

package deduphttp_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/dedup/deduphttp"
	"github.com/tracedup/tracedup/internal/sentrytest"
)

var okBody = []byte("ok")

// The middleware allocates nothing per request on the success path.
func TestHandlerAllocatesNothing(t *testing.T) {
	tr := dedup.NewTransport(sentrytest.Discard{})
	defer tr.Close()
	h := deduphttp.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write(okBody)
	}), tr)
	req := httptest.NewRequest(http.MethodGet, "/charge", nil).WithContext(sampledCtx())
	w := &plainWriter{header: http.Header{}}
	assert.Zero(t, testing.AllocsPerRun(1000, func() { h.ServeHTTP(w, req) }))
}

type okTransport struct{ resp *http.Response }

func (o okTransport) RoundTrip(*http.Request) (*http.Response, error) { return o.resp, nil }

// The RoundTripper's cost per call on the success path is the announcement
// on a copy of the request, since a RoundTripper must not modify the
// request it is given: exactly five allocations, whatever the operation's
// length (method, host and path, longer than the runtime's stack buffer for
// strings, still cost none). They are the request's copy, its header map
// (the map and its one group of slots), the announcement's string and the
// one-element slice that holds it in the header. A call outside any span
// announces nothing and costs none.
func TestRoundTripperAllocations(t *testing.T) {
	tr := dedup.NewTransport(sentrytest.Discard{})
	defer tr.Close()
	rt := deduphttp.NewTransport(okTransport{&http.Response{StatusCode: http.StatusOK, Header: http.Header{}}}, tr)
	req := httptest.NewRequest(http.MethodPost, "http://payment.internal:8080/v1/charges/authorize", nil).WithContext(sampledCtx())
	assert.Equal(t, 5.0, testing.AllocsPerRun(1000, func() {
		_, _ = rt.RoundTrip(req)
	}), "allocations per call in a span")
	untraced := httptest.NewRequest(http.MethodPost, "http://payment.internal:8080/v1/charges/authorize", nil)
	assert.Zero(t, testing.AllocsPerRun(1000, func() {
		_, _ = rt.RoundTrip(untraced)
	}), "allocations per call outside any span")
}
