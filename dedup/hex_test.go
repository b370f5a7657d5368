package dedup

import (
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.opentelemetry.io/otel/trace"
)

// traceHex is hex.Encode, faster: every byte value in every position.
func TestTraceHexIsHexEncode(t *testing.T) {
	for b := range 256 {
		for pos := range 16 {
			var id trace.TraceID
			id[pos] = byte(b)
			id[(pos+7)%16] = byte(255 - b)
			h := traceHex(id)
			assert.Equal(t, hex.EncodeToString(id[:]), string(h[:]))
		}
	}
}

func FuzzTraceHex(f *testing.F) {
	f.Add([]byte("0123456789abcdef"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var id trace.TraceID
		copy(id[:], b)
		h := traceHex(id)
		if got, want := string(h[:]), hex.EncodeToString(id[:]); got != want {
			t.Fatalf("traceHex(%x) = %s, want %s", id, got, want)
		}
	})
}
