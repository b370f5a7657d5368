package sentryapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// FuzzParseRateLimit feeds foreign header values to the rate-limit parser:
// it must not panic, must report absent values as absent, and no header may
// make the client wait longer than its cap or a negative time.
func FuzzParseRateLimit(f *testing.F) {
	for _, s := range [][4]string{
		{"40", "1772366407", "0", ""},
		{"0", "1772366407.5", "1", "3"},
		{"0", "1800000000", "0", ""}, // spent, resetting in ten months
		{"", "", "", ""},
		{"-1", "-5", "x", "Sun, 01 Mar 2026 12:00:05 GMT"},
		{"9999999999999999999", "1e300", "NaN", "1e400"},
		{" 3 ", "1772366407000", "-0", "Inf"},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	const maxWait = 2 * time.Minute
	f.Fuzz(func(t *testing.T, remaining, reset, concurrent, retryAfter string) {
		h := http.Header{}
		h.Set("X-Sentry-Rate-Limit-Remaining", remaining)
		h.Set("X-Sentry-Rate-Limit-Reset", reset)
		h.Set("X-Sentry-Rate-Limit-ConcurrentRemaining", concurrent)
		h.Set("Retry-After", retryAfter)
		l := parseRateLimit(h, testNow)
		if l.remaining < -1 || l.concurrentRemaining < -1 {
			t.Fatalf("negative count %+v", l)
		}
		if l.retryAfter < 0 {
			t.Fatalf("negative Retry-After %v from %q", l.retryAfter, retryAfter)
		}
		if u := l.spentUntil(testNow, maxWait); !u.IsZero() && (u.Before(testNow) || u.Sub(testNow) > maxWait) {
			t.Fatalf("spent until %v, more than %v from now", u, maxWait)
		}
		if d := l.retryDelay(testNow, func() time.Duration { return time.Second }); d <= 0 {
			t.Fatalf("retry delay %v", d)
		}
	})
}

// FuzzFlexString decodes any JSON value Sentry might send for an id: a
// string decodes to itself, a number to its digits, null to "", anything
// else is an error, never a panic.
func FuzzFlexString(f *testing.F) {
	for _, s := range []string{`"1889724436"`, `1889724436`, `null`, `1.5e3`, `"\u00e9"`, `[1]`, `{}`, `true`, ``, `"`, ` 7 `} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var got flexString
		err := json.Unmarshal([]byte(in), &got)
		var want string
		var n json.Number
		switch {
		case json.Unmarshal([]byte(in), &want) == nil:
			if err != nil || string(got) != want {
				t.Fatalf("%q: got %q, %v; want the string %q", in, got, err, want)
			}
		case strings.TrimSpace(in) == "null":
			if err != nil || got != "" {
				t.Fatalf("null: got %q, %v", got, err)
			}
		case json.Unmarshal([]byte(in), &n) == nil:
			if err != nil || string(got) != n.String() {
				t.Fatalf("%q: got %q, %v; want the number %q", in, got, err, n)
			}
		default:
			if err == nil && json.Valid([]byte(in)) {
				t.Fatalf("%q: accepted as %q", in, got)
			}
		}
		if err != nil {
			return
		}
		var list flexStrings
		if lerr := json.Unmarshal([]byte("["+in+"]"), &list); lerr != nil || len(list) != 1 || list[0] != string(got) {
			t.Fatalf("a list of %q: got %q, %v; want [%q]", in, list, lerr, got)
		}
	})
}

// FuzzSplitTitle splits any title: either into a type without white space
// and the rest, which join back into the title, or not at all, the title
// then being both.
func FuzzSplitTitle(f *testing.F) {
	for _, s := range []string{"*main.PaymentDeclined: card declined", "ValueError", "could not reach db: timeout", ": x", "a:b", "a: ", "é: ü", "\xff: x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, title string) {
		typ, value := splitTitle(title)
		if typ == title && value == title {
			return
		}
		if typ+": "+value != title {
			t.Fatalf("%q split into %q and %q", title, typ, value)
		}
		if typ == "" || strings.ContainsAny(typ, " \t\n") {
			t.Fatalf("%q: type %q", title, typ)
		}
	})
}

// FuzzNormalizeID normalises any trace value: the result is lower-case,
// normalising it again changes nothing, and a hex id in UUID form loses its
// dashes.
func FuzzNormalizeID(f *testing.F) {
	for _, s := range []string{"4BF92F35-77B3-4DA6-A3CE-929D0E0E4736", "4bf92f3577b34da6a3ce929d0e0e4736", "", "0000", "-", "abc-xyz", " 00f067aa0ba902b7 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := normalizeID(in)
		if again := normalizeID(got); again != got {
			t.Fatalf("%q -> %q -> %q", in, got, again)
		}
		if strings.ContainsAny(got, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
			t.Fatalf("%q -> %q: not lower-case", in, got)
		}
		if strings.Trim(strings.ToLower(strings.TrimSpace(in)), "0123456789abcdef-") == "" && strings.Contains(got, "-") {
			t.Fatalf("%q -> %q: dashes kept", in, got)
		}
	})
}
