package dedup

import (
	"strings"
	"testing"
)

// FuzzParseReported: a header from another service is foreign input. Whatever
// it holds, ParseReported accepts exactly a 32-hex-digit id, lowercased.
func FuzzParseReported(f *testing.F) {
	for _, seed := range []string{
		"0af7651916cd43dd8448eb211c80319c",
		"0AF7651916CD43DD8448EB211C80319C; v=2",
		" 0af7651916cd43dd8448eb211c80319c ",
		"", ";", "yes", "0af7651916cd43dd8448eb211c80319g",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		id, ok := ParseReported(v)
		if !ok {
			if id != "" {
				t.Fatalf("ParseReported(%q) = %q, false: want no id", v, id)
			}
			return
		}
		if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
			t.Fatalf("ParseReported(%q) = %q: not 32 lowercase hex digits", v, id)
		}
		if !strings.Contains(strings.ToLower(v), id) {
			t.Fatalf("ParseReported(%q) = %q: not from the value", v, id)
		}
	})
}
