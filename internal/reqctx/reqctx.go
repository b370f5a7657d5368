// Package reqctx finds the *http.Request behind a web framework's context.
package reqctx

import (
	"context"
	"net/http"
	"reflect"
	"sync"
)

// requestType is the type of the field Request reads.
var requestType = reflect.TypeFor[*http.Request]()

// requestFields maps the type of a context that Request looked at to
// the index of its Request field, or -1 when it has none. A program has a
// handful of context types, so the map stays small.
var requestFields sync.Map // reflect.Type -> int

// Request returns the *http.Request that a web framework's context
// stands for, or nil. It checks, in this order and nothing else:
//
//  1. ctx.Value(0), when that is a non-nil *http.Request: gin's Context
//     answers it so up to v1.9 (from v1.10 it answers only its own typed key
//     gin.ContextRequestKey, which cannot be named without importing gin);
//  2. ctx's dynamic value, when it is a non-nil pointer to a struct with an
//     exported field named Request of type *http.Request, declared on the
//     struct itself (not promoted from an embedded one): the shape of
//     *gin.Context in every version.
//
// sentryotel.CaptureException and its hook call it when a context carries no
// valid span. A framework whose context is neither is not found: pass the
// request's context (r.Context(), in echo c.Request().Context()).
func Request(ctx context.Context) *http.Request {
	if ctx == nil {
		return nil
	}
	if r, ok := ctx.Value(0).(*http.Request); ok && r != nil {
		return r
	}
	v := reflect.ValueOf(ctx)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return nil
	}
	field := requestField(v.Type())
	if field < 0 {
		return nil
	}
	r, _ := v.Elem().Field(field).Interface().(*http.Request)
	return r
}

// requestField returns the index of the Request field of the struct that t
// points to, or -1.
func requestField(t reflect.Type) int {
	if i, ok := requestFields.Load(t); ok {
		return i.(int)
	}
	index := -1
	if st := t.Elem(); st.Kind() == reflect.Struct {
		if f, ok := st.FieldByName("Request"); ok && len(f.Index) == 1 && f.IsExported() && f.Type == requestType {
			index = f.Index[0]
		}
	}
	requestFields.Store(t, index)
	return index
}
