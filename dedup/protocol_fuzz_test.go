package dedup

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/tracedup/tracedup/internal/sentrytest"
)

// FuzzAnswer: an answer comes from whatever server a caller reached, so it
// is foreign input. Whatever it holds, parseAnswer accepts only an event id
// of 32 hex digits from it, lowercased, with a tag of 32 hex digits, and no
// such value verifies for a call it was not made for.
func FuzzAnswer(f *testing.F) {
	for _, seed := range []string{
		"0af7651916cd43dd8448eb211c80319c;m=0123456789abcdef0123456789abcdef",
		"0AF7651916CD43DD8448EB211C80319C; v=2; M=0123456789ABCDEF0123456789ABCDEF",
		"00000000000000000000000000000000",
		"00000000000000000000000000000000;m=00000000000000000000000000000000",
		" 0af7651916cd43dd8448eb211c80319c ;m=;m=0123456789abcdef0123456789abcdef",
		"", ";", ";;m=", "yes", "0af7651916cd43dd8448eb211c80319g;m=0",
	} {
		f.Add(seed)
	}
	tr := NewTransport(sentrytest.Discard{})
	f.Cleanup(tr.Close)
	f.Fuzz(func(t *testing.T, v string) {
		id, tag, ok := parseAnswer(v)
		if ok {
			if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
				t.Fatalf("parseAnswer(%q) = %q: not 32 lowercase hex digits", v, id)
			}
			lower := strings.ToLower(v)
			if !strings.Contains(lower, id) || !strings.Contains(lower, hex.EncodeToString(tag[:])) {
				t.Fatalf("parseAnswer(%q) = %q, %x: not from the value", v, id, tag)
			}
		}
		before := tr.Stats().Untrusted
		if got := tr.Call().Reported(v); got != "" {
			t.Fatalf("Reported(%q) = %q for a call it was not made for", v, got)
		}
		if want := before + uint64(min(len(v), 1)); tr.Stats().Untrusted != want {
			t.Fatalf("Reported(%q): Untrusted %d, want %d", v, tr.Stats().Untrusted, want)
		}
	})
}

// FuzzAnnouncement: an announcement comes from any client of a service.
// parseAnnouncement takes its nonce and tag only from the value, and an
// announcement that was not made with the fleet's key is never answered.
func FuzzAnnouncement(f *testing.F) {
	for _, seed := range []string{
		"n=0123456789abcdef0123456789abcdef;m=0123456789abcdef0123456789abcdef",
		"M=0123456789ABCDEF0123456789ABCDEF ; x=1; N = 0123456789abcdef0123456789abcdef",
		"n=;m=", "n", "=", ";", "", "n=0123456789abcdef0123456789abcdeg;m=0123456789abcdef0123456789abcdef",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		nonce, tag, ok := parseAnnouncement(v)
		if !ok {
			return
		}
		lower := strings.ToLower(v)
		if !strings.Contains(lower, hex.EncodeToString(nonce[:])) || !strings.Contains(lower, hex.EncodeToString(tag[:])) {
			t.Fatalf("parseAnnouncement(%q) = %x, %x: not from the value", v, nonce, tag)
		}
		// A forged tag would have to be HMAC-SHA256 under the fleet key.
		want := noDSNFleet.tag(labelCaller, &nonce, "")
		if want == tag {
			t.Fatalf("parseAnnouncement(%q): the fuzzer forged a tag", v)
		}
	})
}
