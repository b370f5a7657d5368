package reqctx_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/tracedup/tracedup/internal/reqctx"
)

// base is a context.Context that answers no key, embedded by the shapes
// below.
type base struct{}

func (base) Deadline() (time.Time, bool) { return time.Time{}, false }
func (base) Done() <-chan struct{}       { return nil }
func (base) Err() error                  { return nil }
func (base) Value(any) any               { return nil }

type withField struct {
	base
	Request *http.Request
}

type unexported struct {
	base
	request *http.Request
}

type otherType struct {
	base
	Request http.Request
}

type outer struct{ *withField } // Request promoted from an embedded struct

type valueZero struct {
	base
	req *http.Request
}

func (v valueZero) Value(key any) any {
	if key == 0 {
		return v.req
	}
	return nil
}

func TestRequest(t *testing.T) {
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	for _, tt := range []struct {
		name string
		ctx  context.Context
		want *http.Request
	}{
		{"Request field", &withField{Request: req}, req},
		{"Request field nil", &withField{}, nil},
		{"not a pointer", withField{Request: req}, nil},
		{"unexported field", &unexported{request: req}, nil},
		{"field of another type", &otherType{Request: *req}, nil},
		{"promoted field", &outer{&withField{Request: req}}, nil},
		{"Value(0)", valueZero{req: req}, req},
		//lint:ignore SA1029 gin's key, on purpose
		{"Value(0) in a chain", context.WithValue(context.Background(), 0, req), req},
		{"plain context", context.Background(), nil},
		{"nil", nil, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			assert.Same(t, tt.want, reqctx.Request(tt.ctx))
			assert.Same(t, tt.want, reqctx.Request(tt.ctx), "again, from the cache")
		})
	}
}

func BenchmarkRequest(b *testing.B) {
	ctx := &withField{Request: httptest.NewRequest(http.MethodGet, "/", nil)}
	b.ReportAllocs()
	for b.Loop() {
		_ = reqctx.Request(ctx)
	}
}
