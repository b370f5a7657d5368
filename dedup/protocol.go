package dedup

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"hash"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/getsentry/sentry-go"
)

// The acknowledgement's names on the wire. The protocol is described once,
// in the package documentation ("Across services"); the adapters use these.
const (
	// HeaderReported is the HTTP response header that carries an
	// answer: "<event id>;m=<tag>".
	HeaderReported = "Tracedup-Reported"
	// TrailerReported is the gRPC trailer metadata key that carries an
	// answer, as HeaderReported does.
	TrailerReported = "tracedup-reported"
	// HeaderCaller is the HTTP request header by which a caller announces
	// itself: "n=<nonce>;m=<tag>". A service answers only a caller that
	// announced itself and whose announcement verifies.
	HeaderCaller = "Tracedup-Caller"
	// MetadataCaller is the gRPC request metadata key that carries an
	// announcement, as HeaderCaller does.
	MetadataCaller = "tracedup-caller"
)

// The labels that keep the two MACs of the protocol apart.
const (
	labelCaller   = "caller\x00"
	labelReported = "reported\x00"
)

// Lengths on the wire, in hex digits.
const (
	idLen    = 32 // an event id
	nonceLen = 32 // a caller's nonce, 16 bytes
	tagLen   = 32 // a MAC truncated to 16 bytes
)

// trust is what a Transport needs to take part in the acknowledgement
// safely: the key of its fleet, set by Configure, and the count of answers
// it did not honour.
type trust struct {
	fleet     atomic.Pointer[fleet]
	untrusted atomic.Uint64
}

// fleet is a fleet key, with its pool of keyed HMAC-SHA256 hashers: hmac's
// Reset returns a hasher to its keyed state, so a call costs no key setup.
type fleet struct {
	macs sync.Pool // of *mac
}

// mac is a pooled hasher with room for its message and its sum, so that a
// tag costs no allocation of its own.
type mac struct {
	h   hash.Hash
	msg [64]byte
	sum [sha256.Size]byte
}

func newFleet(key [sha256.Size]byte) *fleet {
	f := &fleet{}
	f.macs.New = func() any { return &mac{h: hmac.New(sha256.New, key[:])} }
	return f
}

// dsnFleet is the fleet of the Sentry host of dsn: every Transport whose
// client sends to that host, which for sentry.io is the organisation
// (o<id>.ingest[.region].sentry.io) and for a self-hosted Sentry the host.
// A DSN that does not parse, or none, is the fleet of "".
func dsnFleet(dsn string) *fleet {
	host := ""
	if d, err := sentry.NewDsn(dsn); err == nil {
		host = strings.ToLower(d.GetHost())
		if p := d.GetPort(); (d.GetScheme() == "https" && p != 443) || (d.GetScheme() == "http" && p != 80) {
			host += ":" + strconv.Itoa(p)
		}
	}
	if host == "" {
		return noDSNFleet
	}
	return newFleet(sha256.Sum256([]byte("tracedup fleet v1\x00" + host)))
}

// noDSNFleet is the fleet of a Transport used without a client, or of one
// whose client has no DSN: such Transports trust each other, which is what
// tests and a Transport used on its own need.
var noDSNFleet = newFleet(sha256.Sum256([]byte("tracedup fleet v1\x00")))

// keyFleet is the fleet of a shared secret given to WithFleetKey.
func keyFleet(key []byte) *fleet {
	return newFleet(sha256.Sum256(append([]byte("tracedup fleet key v1\x00"), key...)))
}

// fleet returns the Transport's fleet: the one WithFleetKey set, else the
// one of the DSN Configure was given, else that of no DSN.
func (t *Transport) fleet() *fleet {
	if f := t.trust.fleet.Load(); f != nil {
		return f
	}
	if t.cfg.fleet != nil {
		return t.cfg.fleet
	}
	return noDSNFleet
}

// configureTrust sets the fleet from the client's options, unless
// WithFleetKey set it.
func (t *Transport) configureTrust(options sentry.ClientOptions) {
	if t.cfg.fleet == nil {
		t.trust.fleet.Store(dsnFleet(options.Dsn))
	}
}

// tag returns HMAC-SHA256(fleet key, label + nonce + id), truncated to 16
// bytes.
func (f *fleet) tag(label string, nonce *[16]byte, id string) (tag [16]byte) {
	m := f.macs.Get().(*mac)
	msg := append(append(append(m.msg[:0], label...), nonce[:]...), id...)
	m.h.Reset()
	m.h.Write(msg)
	copy(tag[:], m.h.Sum(m.sum[:0]))
	f.macs.Put(m)
	return tag
}

// Call is one outgoing call's side of the acknowledgement: a caller
// announces itself with [Call.Announcement] on the request and honours only
// the answer [Call.Reported] verifies. The zero Call announces nothing and
// honours nothing.
type Call struct {
	t     *Transport
	f     *fleet
	nonce [16]byte
}

// Call returns the acknowledgement's side of a new outgoing call, with a
// nonce of its own.
func (t *Transport) Call() Call {
	c := Call{t: t, f: t.fleet()}
	// The nonce is no secret (it travels in the clear): it only has to be
	// unique and unpredictable, for an answer to be bound to one call.
	// crypto/rand costs about 60 ns and no allocation (math/rand/v2, 12 ns),
	// nothing beside the call: it leaves no doubt. It never fails.
	_, _ = rand.Read(c.nonce[:])
	return c
}

// Announcement returns the value of HeaderCaller (or MetadataCaller) for
// the call: "n=<nonce>;m=<tag>", where tag proves the caller holds the
// fleet's key.
func (c Call) Announcement() string {
	if c.f == nil {
		return ""
	}
	tag := c.f.tag(labelCaller, &c.nonce, "")
	var b [2 + nonceLen + 3 + tagLen]byte
	copy(b[:], "n=")
	hexEncode(b[2:], c.nonce[:])
	copy(b[2+nonceLen:], ";m=")
	hexEncode(b[2+nonceLen+3:], tag[:])
	return string(b[:])
}

// Reported returns the event id acknowledged in answer, the value of
// HeaderReported (or TrailerReported) on the call's response, or "" when
// there is none or it does not verify: an answer counts only when its tag
// binds the id to this call's nonce under the fleet's key. A non-empty
// answer that does not verify (a stranger's, a partner's, a forged one) is
// counted in Stats.Untrusted.
func (c Call) Reported(answer string) string {
	if answer == "" || c.t == nil {
		return ""
	}
	if id, tag, ok := parseAnswer(answer); ok {
		want := c.f.tag(labelReported, &c.nonce, id)
		if hmac.Equal(want[:], tag[:]) {
			return id
		}
	}
	c.t.trust.untrusted.Add(1)
	return ""
}

// Answer returns the value of HeaderReported (or TrailerReported) to send
// on the call's response: "<event id>;m=<tag>", where tag binds the id to
// the caller's nonce. It is "" when there is nothing to answer
// ([Incoming.Reported] is "") or when announcement, the request's
// HeaderCaller (or MetadataCaller), is missing or does not verify: a
// client that did not announce itself as a caller of the fleet is told
// nothing. It verifies only when there is something to answer, so the
// success path costs no MAC.
func (in *Incoming) Answer(announcement string) string {
	id := in.Reported()
	if id == "" || announcement == "" || in.t == nil {
		return ""
	}
	id, ok := canonicalID(id)
	if !ok {
		return ""
	}
	nonce, tag, ok := parseAnnouncement(announcement)
	if !ok {
		return ""
	}
	f := in.t.fleet()
	if want := f.tag(labelCaller, &nonce, ""); !hmac.Equal(want[:], tag[:]) {
		return ""
	}
	tag = f.tag(labelReported, &nonce, id)
	var b [idLen + 3 + tagLen]byte
	copy(b[:], id)
	copy(b[idLen:], ";m=")
	hexEncode(b[idLen+3:], tag[:])
	return string(b[:])
}

// parseAnswer reads an answer: the event id, in lowercase, and the tag of
// its parameter m. Other parameters are ignored.
func parseAnswer(v string) (id string, tag [16]byte, ok bool) {
	v, params, _ := strings.Cut(v, ";")
	if id, ok = canonicalID(v); !ok {
		return "", tag, false
	}
	m, found := param(params, "m")
	if !found {
		return "", tag, false
	}
	if tag, ok = decodeHex16(m); !ok {
		return "", tag, false
	}
	return id, tag, true
}

// parseAnnouncement reads an announcement: the nonce of its parameter n and
// the tag of its parameter m. Other parameters are ignored.
func parseAnnouncement(v string) (nonce, tag [16]byte, ok bool) {
	n, found := param(v, "n")
	if !found {
		return nonce, tag, false
	}
	m, found := param(v, "m")
	if !found {
		return nonce, tag, false
	}
	if nonce, ok = decodeHex16(n); !ok {
		return nonce, tag, false
	}
	tag, ok = decodeHex16(m)
	return nonce, tag, ok
}

// param returns the value of the first parameter named name (in any case)
// in params, a list of name=value separated by ';', with optional spaces
// around each part.
func param(params, name string) (string, bool) {
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		k, v, ok := strings.Cut(p, "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// canonicalID returns v, trimmed of spaces, in lowercase, if it is an event
// id: 32 hex digits.
func canonicalID(v string) (string, bool) {
	v = strings.TrimSpace(v)
	if len(v) != idLen {
		return "", false
	}
	lower := true
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f':
		case 'A' <= c && c <= 'F':
			lower = false
		default:
			return "", false
		}
	}
	if !lower {
		v = strings.ToLower(v)
	}
	return v, true
}

// decodeHex16 decodes 32 hex digits, in either case.
func decodeHex16(s string) (b [16]byte, ok bool) {
	if len(s) != 32 {
		return b, false
	}
	for i := range b {
		hi, ok1 := unhex(s[2*i])
		lo, ok2 := unhex(s[2*i+1])
		if !ok1 || !ok2 {
			return b, false
		}
		b[i] = hi<<4 | lo
	}
	return b, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// hexEncode writes src to dst in lowercase hex.
func hexEncode(dst, src []byte) {
	const digits = "0123456789abcdef"
	for i, c := range src {
		dst[2*i], dst[2*i+1] = digits[c>>4], digits[c&15]
	}
}
