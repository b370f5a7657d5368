package dedup_test

import (
	"strings"
	"testing"

	"github.com/getsentry/sentry-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tracedup/tracedup/dedup"
	"github.com/tracedup/tracedup/internal/sentrytest"
)

const eventID = "9f2c4a1be0d34c5f8a6b7c8d9e0f1a2b"

// newFleetTransport returns a Transport configured as a sentry-go client
// with dsn would configure it.
func newFleetTransport(t *testing.T, dsn string, options ...dedup.Option) *dedup.Transport {
	t.Helper()
	tr := dedup.NewTransport(sentrytest.NewTransport(), options...)
	t.Cleanup(tr.Close)
	tr.Configure(sentry.ClientOptions{Dsn: dsn})
	return tr
}

// reportedCall returns a call tr serves whose error event (eventID) reached
// tr, so that it has something to answer.
func reportedCall(t *testing.T, tr *dedup.Transport) *dedup.Incoming {
	t.Helper()
	in := tr.Incoming(spanCtx(t, traceA, "00000000000000c3"))
	t.Cleanup(in.End)
	ev := cascade(traceA)[0]
	ev.EventID = eventID
	tr.SendEvent(ev)
	require.Equal(t, eventID, in.Reported())
	return in
}

func TestProtocolRoundTrip(t *testing.T) {
	caller, callee := newFleetTransport(t, ""), newFleetTransport(t, "")
	call := caller.Call()
	announcement := call.Announcement()
	assert.Regexp(t, `^n=[0-9a-f]{32};m=[0-9a-f]{32}$`, announcement)
	assert.NotEqual(t, announcement, caller.Call().Announcement(), "a nonce per call")

	answer := reportedCall(t, callee).Answer(announcement)
	assert.Regexp(t, `^`+eventID+`;m=[0-9a-f]{32}$`, answer)
	assert.Equal(t, eventID, call.Reported(answer))
	assert.Zero(t, caller.Stats().Untrusted)

	assert.Empty(t, call.Reported(""), "no answer")
	assert.Zero(t, caller.Stats().Untrusted, "no answer is not an untrusted one")
}

func TestProtocolNothingToAnswer(t *testing.T) {
	tr := newFleetTransport(t, "")
	announcement := tr.Call().Announcement()
	var nilIncoming *dedup.Incoming
	assert.Empty(t, nilIncoming.Answer(announcement))
	in := tr.Incoming(spanCtx(t, traceA, "00000000000000c3"))
	defer in.End()
	assert.Empty(t, in.Answer(announcement), "nothing reported")

	var zero dedup.Call
	assert.Empty(t, zero.Announcement())
	assert.Empty(t, zero.Reported(eventID+";m=00000000000000000000000000000000"))
}

// Each field of the announcement and of the answer is bound: change one
// and it no longer verifies.
func TestProtocolTampering(t *testing.T) {
	caller, callee := newFleetTransport(t, ""), newFleetTransport(t, "")
	in := reportedCall(t, callee)
	call := caller.Call()
	announcement := call.Announcement()
	answer := in.Answer(announcement)
	require.NotEmpty(t, answer)

	flip := func(s string, i int) string {
		c := byte('0')
		if s[i] == '0' {
			c = '1'
		}
		return s[:i] + string(c) + s[i+1:]
	}
	for name, a := range map[string]string{
		"nonce":         flip(announcement, 2),
		"tag":           flip(announcement, len(announcement)-1),
		"no tag":        announcement[:strings.Index(announcement, ";")],
		"no nonce":      announcement[strings.Index(announcement, ";")+1:],
		"short nonce":   "n=" + announcement[3:],
		"not hex":       strings.Replace(announcement, "n=", "n=x", 1)[:len(announcement)],
		"another fleet": newFleetTransport(t, "https://k@o2.ingest.sentry.io/1").Call().Announcement(),
	} {
		assert.Empty(t, in.Answer(a), "announcement, %s: %q", name, a)
	}
	for name, a := range map[string]string{
		"id":              flip(answer, 0),
		"tag":             flip(answer, len(answer)-1),
		"no tag":          eventID,
		"the zero id":     "00000000000000000000000000000000",
		"a bogus tag":     "00000000000000000000000000000000;m=00000000000000000000000000000000",
		"another's nonce": in.Answer(caller.Call().Announcement()),
		"not an id":       "yes",
	} {
		before := caller.Stats().Untrusted
		assert.Empty(t, call.Reported(a), "answer, %s: %q", name, a)
		assert.Equal(t, before+1, caller.Stats().Untrusted, "answer, %s: counted", name)
	}
}

// Parameters are name=value, in any order, with spaces around the parts,
// names in any case; hex digits in either case; unknown parameters are
// ignored.
func TestProtocolParametersAndCase(t *testing.T) {
	caller, callee := newFleetTransport(t, ""), newFleetTransport(t, "")
	in := reportedCall(t, callee)
	call := caller.Call()
	n, m, _ := strings.Cut(call.Announcement(), ";")
	for _, a := range []string{
		n + ";" + m,
		m + ";" + n,
		"v=2;" + m + "; x ;" + n + ";",
		" N = " + strings.ToUpper(n[2:]) + " ; M=" + strings.ToUpper(m[2:]),
	} {
		answer := in.Answer(a)
		require.NotEmpty(t, answer, "announcement %q", a)
		id, tag, _ := strings.Cut(answer, ";")
		for _, v := range []string{
			answer,
			strings.ToUpper(id) + "; v=2;" + strings.ToUpper(tag) + ";x",
			" " + id + " ;q;" + tag,
		} {
			assert.Equal(t, eventID, call.Reported(v), "answer %q", v)
		}
	}
	assert.Zero(t, caller.Stats().Untrusted)
}

// The default fleet is the Sentry host of the client's DSN: projects of one
// organisation (one host) trust each other; another organisation or Sentry
// does not. WithFleetKey replaces it, on both sides.
func TestProtocolFleets(t *testing.T) {
	const (
		org1        = "https://public@o1.ingest.us.sentry.io/11"
		org1Other   = "https://other@O1.INGEST.US.SENTRY.IO:443/12"
		org2        = "https://public@o2.ingest.us.sentry.io/11"
		selfHosted  = "http://public@sentry.internal:9000/3"
		selfHosted2 = "http://public@sentry.internal/3"
	)
	key := []byte("0123456789abcdef")
	tests := []struct {
		name           string
		caller, callee func(t *testing.T) *dedup.Transport
		trusted        bool
	}{
		{"one organisation, two projects", dsnT(org1), dsnT(org1Other), true},
		{"another organisation", dsnT(org1), dsnT(org2), false},
		{"no DSN and a DSN", dsnT(""), dsnT(org1), false},
		{"self-hosted, same host and port", dsnT(selfHosted), dsnT(selfHosted), true},
		{"self-hosted, another port", dsnT(selfHosted), dsnT(selfHosted2), false},
		{"a key on both sides, different DSNs", dsnT(org1, dedup.WithFleetKey(key)), dsnT(org2, dedup.WithFleetKey(key)), true},
		{"a key on both sides, before Configure", keyT(key), keyT(key), true},
		{"a key on one side only", dsnT(org1, dedup.WithFleetKey(key)), dsnT(org1), false},
		{"different keys", dsnT(org1, dedup.WithFleetKey(key)), dsnT(org1, dedup.WithFleetKey([]byte("another key"))), false},
		{"an empty key is ignored", dsnT(org1, dedup.WithFleetKey(nil)), dsnT(org1), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			caller, callee := tt.caller(t), tt.callee(t)
			call := caller.Call()
			answer := reportedCall(t, callee).Answer(call.Announcement())
			if tt.trusted {
				assert.Equal(t, eventID, call.Reported(answer))
				return
			}
			assert.Empty(t, answer, "the callee answers no caller of another fleet")
			// Nor would the caller honour the callee's answer to a caller
			// of the callee's own fleet.
			own := callee.Call()
			forged := reportedCall(t, callee).Answer(own.Announcement())
			require.NotEmpty(t, forged)
			assert.Empty(t, call.Reported(forged))
			assert.Equal(t, uint64(1), caller.Stats().Untrusted)
		})
	}
}

func dsnT(dsn string, options ...dedup.Option) func(t *testing.T) *dedup.Transport {
	return func(t *testing.T) *dedup.Transport { return newFleetTransport(t, dsn, options...) }
}

// keyT is a Transport with a fleet key and no client.
func keyT(key []byte) func(t *testing.T) *dedup.Transport {
	return func(t *testing.T) *dedup.Transport {
		tr := dedup.NewTransport(sentrytest.NewTransport(), dedup.WithFleetKey(key))
		t.Cleanup(tr.Close)
		return tr
	}
}

// The key given to WithFleetKey is copied: changing the slice afterwards
// changes nothing.
func TestWithFleetKeyCopiesTheKey(t *testing.T) {
	key := []byte("0123456789abcdef")
	option := dedup.WithFleetKey(key)
	caller := newFleetTransport(t, "", option)
	key[0] = 'x'
	callee := newFleetTransport(t, "", dedup.WithFleetKey([]byte("0123456789abcdef")))
	call := caller.Call()
	assert.Equal(t, eventID, call.Reported(reportedCall(t, callee).Answer(call.Announcement())))
}
