package rootcause

import (
	"slices"
	"strings"
	"sync"
)

// ShortType returns the bare name of the error's ExceptionType: without
// leading '*' and without the package path or other qualifier up to the last
// '.' ("DownstreamError" for "*main.DownstreamError",
// "github.com/x/y.DownstreamError" or "app.errors.DownstreamError"). Dots
// inside the type arguments of a generic type are kept
// ("Wrapped[example.com/p.T]" for "*pkg.Wrapped[example.com/p.T]").
func (e Error) ShortType() string { return shortType(e.ExceptionType) }

func shortType(t string) string {
	t = strings.TrimLeft(t, "*")
	name := t
	if i := strings.IndexByte(name, '['); i >= 0 {
		name = name[:i]
	}
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		return t[i+1:]
	}
	return t
}

// DemoteTypes returns a strategy for exception types that are known to wrap
// or report another service's failure, such as a gateway's DownstreamError:
// an error of one of types is only chosen when every error is of one of
// types. next picks among the other errors (among all of them when every
// error is of one of types); nil means [Default]. The index next returns is
// mapped back to errs; an index out of range is returned as -1.
//
// A type matches an error's ExceptionType when they are equal, equal without
// leading '*', or when it equals the error's [Error.ShortType]: so
// "DownstreamError" matches "*main.DownstreamError" and
// "github.com/x/y.DownstreamError", while "main.DownstreamError" matches
// "*main.DownstreamError" but not "*other.DownstreamError".
func DemoteTypes(next Strategy, types ...string) Strategy {
	if next == nil {
		next = Default()
	}
	d := demoteTypes{next: next, types: slices.Clone(types), bare: make([]string, len(types))}
	for i, t := range types {
		d.bare[i] = strings.TrimLeft(t, "*")
	}
	return d
}

type demoteTypes struct {
	next  Strategy
	types []string
	bare  []string // types without leading '*'
}

// keptPool holds the buffers that pass the errors that are not demoted to
// next, so that RootCause does not allocate on the flush path.
var keptPool = sync.Pool{New: func() any { return new([]Error) }}

// maxPooled bounds the buffers kept in keptPool, so that one huge trace does
// not pin its memory.
const maxPooled = 256

// RootCause implements [Strategy].
func (d demoteTypes) RootCause(errs []Error) int {
	// For up to 64 errors, mask remembers which are kept, so that each
	// error's type is matched once.
	var mask uint64
	kept := 0
	for i := range errs {
		if !d.demoted(&errs[i]) {
			kept++
			if i < 64 {
				mask |= 1 << i
			}
		}
	}
	if kept == 0 || kept == len(errs) {
		return d.next.RootCause(errs)
	}
	isKept := func(i int) bool {
		if i < 64 {
			return mask&(1<<i) != 0
		}
		return !d.demoted(&errs[i])
	}

	bufp := keptPool.Get().(*[]Error)
	buf := (*bufp)[:0]
	for i := range errs {
		if isKept(i) {
			buf = append(buf, errs[i])
		}
	}
	r := d.next.RootCause(buf)
	// The buffer goes back to the pool only after next returned; it must not
	// keep the events it points to alive.
	clear(buf)
	if cap(buf) <= maxPooled {
		*bufp = buf[:0]
		keptPool.Put(bufp)
	}

	if r < 0 || r >= kept {
		return -1
	}
	for i := range errs {
		if !isKept(i) {
			continue
		}
		if r == 0 {
			return i
		}
		r--
	}
	return -1 // not reached: r < kept
}

func (d demoteTypes) demoted(e *Error) bool {
	return e.IsType(d.types...)
}

// IsType reports whether the error's ExceptionType is one of types, matched
// as [DemoteTypes] matches them: equal, equal without leading '*', or equal
// to its [Error.ShortType]. An error without an exception type is of none.
func (e Error) IsType(types ...string) bool {
	if e.ExceptionType == "" {
		return false
	}
	bare := strings.TrimLeft(e.ExceptionType, "*")
	short := shortType(e.ExceptionType)
	for _, t := range types {
		if t == short || strings.TrimLeft(t, "*") == bare {
			return true
		}
	}
	return false
}

// Description returns "DemoteTypes{" followed by the types, comma-separated,
// "}->" and next's description.
func (d demoteTypes) Description() string {
	return "DemoteTypes{" + strings.Join(d.types, ",") + "}->" + Describe(d.next)
}
