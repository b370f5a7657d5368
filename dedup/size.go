package dedup

import (
	"unsafe"

	"github.com/getsentry/sentry-go"
)

// Heap overheads of the parts of an event, beside their strings: the
// structs themselves and the headers of the maps and slices that hold them.
// Go's maps hold about 50 bytes a small entry beyond its key and value.
const (
	eventStructBytes   = int64(unsafe.Sizeof(sentry.Event{}))
	exceptionBytes     = int64(unsafe.Sizeof(sentry.Exception{})) + int64(unsafe.Sizeof(sentry.Stacktrace{}))
	frameBytes         = int64(unsafe.Sizeof(sentry.Frame{}))
	breadcrumbBytes    = int64(unsafe.Sizeof(sentry.Breadcrumb{})) + 8
	threadBytes        = int64(unsafe.Sizeof(sentry.Thread{})) + int64(unsafe.Sizeof(sentry.Stacktrace{}))
	requestBytes       = int64(unsafe.Sizeof(sentry.Request{}))
	mapEntryBytes      = 64
	stringHeaderBytes  = 16
	interfaceBytes     = 16
	unknownValueBytes  = 64 // a value of a type the estimate does not walk
	maxEstimateDepth   = 6
	attachmentOverhead = int64(unsafe.Sizeof(sentry.Attachment{})) + 8
)

// eventBytes estimates the heap an event holds: its structs, and the bytes
// of the strings in its exceptions and their frames (function, file,
// context lines, vars), threads, breadcrumbs, request, tags, contexts
// (where sentry-go puts extra), modules, user and attachments. It walks the event once, without
// allocating; values in maps of any type are walked through strings,
// numbers, maps and slices, and counted as 64 bytes each past a depth of six
// or when of another type. It is an estimate of what keeping the event
// alive costs, within 15% of the heap measured for events of 13 KB to
// 1 MB (see TestEventBytesTracksTheHeap), and the unit of the
// Transport's budget: a frame-heavy event holds a few times its JSON size.
func eventBytes(ev *sentry.Event) int64 {
	n := eventStructBytes + strs(ev.Dist, ev.Environment, string(ev.EventID), ev.Message, ev.Platform,
		ev.Release, ev.ServerName, ev.Transaction, ev.Logger, ev.Type, string(ev.Level))
	for _, f := range ev.Fingerprint {
		n += stringHeaderBytes + int64(len(f))
	}
	n += stringMap(ev.Tags) + stringMap(ev.Modules)
	for k, c := range ev.Contexts {
		n += mapEntryBytes + int64(len(k)) + anyMap(c, 1)
	}
	for i := range ev.Exception {
		x := &ev.Exception[i]
		n += exceptionBytes + strs(x.Type, x.Value, x.Module) + stacktrace(x.Stacktrace)
	}
	for i := range ev.Threads {
		th := &ev.Threads[i]
		n += threadBytes + strs(th.ID, th.Name) + stacktrace(th.Stacktrace)
	}
	for _, b := range ev.Breadcrumbs {
		if b != nil {
			n += breadcrumbBytes + strs(b.Type, b.Category, b.Message, string(b.Level)) + anyMap(b.Data, 1)
		}
	}
	if r := ev.Request; r != nil {
		n += requestBytes + strs(r.URL, r.Method, r.Data, r.QueryString, r.Cookies) + stringMap(r.Headers) + stringMap(r.Env)
	}
	u := &ev.User
	n += strs(u.ID, u.Email, u.IPAddress, u.Username, u.Name) + stringMap(u.Data)
	for _, a := range ev.Attachments {
		if a != nil {
			n += attachmentOverhead + int64(len(a.Filename)+len(a.ContentType)+len(a.Payload))
		}
	}
	// The allocator rounds each object up to its size class: about an
	// eighth more, measured.
	return n + n/8
}

func stacktrace(st *sentry.Stacktrace) int64 {
	if st == nil {
		return 0
	}
	var n int64
	for i := range st.Frames {
		f := &st.Frames[i]
		n += frameBytes + strs(f.Function, f.Symbol, f.Module, f.Filename, f.AbsPath, f.ContextLine,
			f.Package, f.InstructionAddr, f.AddrMode, f.SymbolAddr, f.ImageAddr, f.Platform)
		for _, l := range f.PreContext {
			n += stringHeaderBytes + int64(len(l))
		}
		for _, l := range f.PostContext {
			n += stringHeaderBytes + int64(len(l))
		}
		n += anyMap(f.Vars, 1)
	}
	return n
}

func strs(s ...string) int64 {
	var n int64
	for _, v := range s {
		n += int64(len(v))
	}
	return n
}

func stringMap(m map[string]string) int64 {
	var n int64
	for k, v := range m {
		n += mapEntryBytes + int64(len(k)+len(v))
	}
	return n
}

func anyMap[M ~map[string]any](m M, depth int) int64 {
	var n int64
	for k, v := range m {
		n += mapEntryBytes + int64(len(k)) + anyBytes(v, depth)
	}
	return n
}

// anyBytes estimates a value of a map of any: what JSON decoding and most
// SDK integrations put there.
func anyBytes(v any, depth int) int64 {
	if depth > maxEstimateDepth {
		return unknownValueBytes
	}
	switch v := v.(type) {
	case nil:
		return interfaceBytes
	case string:
		return interfaceBytes + stringHeaderBytes + int64(len(v))
	case []byte:
		return interfaceBytes + 24 + int64(len(v))
	case bool, int, int64, int32, uint, uint64, uint32, float64, float32:
		return interfaceBytes + 8
	case map[string]any:
		return interfaceBytes + anyMap(v, depth+1)
	case map[string]string:
		return interfaceBytes + stringMap(v)
	case []any:
		n := int64(interfaceBytes + 24)
		for _, x := range v {
			n += anyBytes(x, depth+1)
		}
		return n
	case []string:
		n := int64(interfaceBytes + 24)
		for _, x := range v {
			n += stringHeaderBytes + int64(len(x))
		}
		return n
	default:
		return unknownValueBytes
	}
}
