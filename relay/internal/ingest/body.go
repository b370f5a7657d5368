package ingest

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
)

// readBody reads r's body, decompressing it as its Content-Encoding says
// (gzip, deflate as zlib or raw, br, zstd; "", identity and the "utf-8" that
// some SDKs send mean none, as in Relay's decompression middleware), and
// refuses it with 413 when it is over limit as sent or once decompressed.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request, limit int64, held *int64) ([]byte, *httpError) {
	if r.ContentLength > limit {
		return nil, reject(http.StatusRequestEntityTooLarge, reasonTooLarge, "body of %d bytes is over the limit of %d", r.ContentLength, limit)
	}
	var src io.Reader = http.MaxBytesReader(w, r.Body, limit)
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity", "utf-8":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(src)
		if err != nil {
			return nil, bodyError("gzip", err, limit)
		}
		defer zr.Close()
		src = zr
	case "deflate":
		src = newDeflateReader(src)
	case "br":
		src = brotli.NewReader(src)
	case "zstd":
		zr, err := zstd.NewReader(src,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxMemory(uint64(limit)),
		)
		if err != nil {
			return nil, bodyError("zstd", err, limit)
		}
		defer zr.Close()
		src = zr
	default:
		return nil, reject(http.StatusUnsupportedMediaType, reasonEncoding, "unsupported Content-Encoding %q", enc)
	}
	size := int64(512)
	if r.ContentLength > 0 && r.Header.Get("Content-Encoding") == "" {
		size = r.ContentLength + 1
	}
	if !h.hold(held, size) {
		return nil, h.limited(h.cfg.retryAfter, nil)
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	// The second limit stops zip bombs: small as sent, huge decompressed.
	// What is read is held against the budget of bodies in flight: twice
	// it, for the buffer's growth.
	n, err := buf.ReadFrom(&heldReader{r: io.LimitReader(src, limit+1), h: h, held: held})
	switch {
	case errors.Is(err, errBusy):
		return nil, h.limited(h.cfg.retryAfter, nil)
	case err != nil:
		return nil, bodyError("reading body", err, limit)
	case n > limit:
		return nil, reject(http.StatusRequestEntityTooLarge, reasonTooLarge, "body is over the limit of %d bytes once decompressed", limit)
	}
	return buf.Bytes(), nil
}

// bodyError maps an error reading a body to 413 when it was too large,
// else to 400.
func bodyError(what string, err error, limit int64) *httpError {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return reject(http.StatusRequestEntityTooLarge, reasonTooLarge, "body is over the limit of %d bytes", limit)
	}
	return reject(http.StatusBadRequest, reasonEncoding, "%s: %v", what, err)
}

// newDeflateReader reads HTTP's "deflate", which is zlib (RFC 1950) but is
// sent as raw deflate (RFC 1951) by some clients.
func newDeflateReader(src io.Reader) io.Reader {
	br := bufio.NewReader(src)
	if h, err := br.Peek(2); err == nil && isZlibHeader(h) {
		zr, err := zlib.NewReader(br)
		if err == nil {
			return zr
		}
	}
	return flate.NewReader(br)
}

func isZlibHeader(h []byte) bool {
	return h[0]&0x0f == 8 && h[0]>>4 <= 7 && (uint16(h[0])<<8|uint16(h[1]))%31 == 0
}

// decodeStoreBody returns a store body as JSON: legacy SDKs sent it
// base64-encoded, and zlib-compressed within that (Relay's store endpoint
// accepts both).
func decodeStoreBody(body []byte, limit int64) ([]byte, *httpError) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] == '{' {
		return body, nil
	}
	decoded, err := base64.StdEncoding.AppendDecode(nil, trimmed)
	if err != nil {
		return nil, reject(http.StatusBadRequest, reasonMalformed, "store body is neither JSON nor base64: %v", err)
	}
	if len(decoded) < 2 || !isZlibHeader(decoded) {
		return decoded, nil
	}
	zr, err := zlib.NewReader(bytes.NewReader(decoded))
	if err != nil {
		return nil, reject(http.StatusBadRequest, reasonMalformed, "store body: zlib: %v", err)
	}
	defer zr.Close()
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(zr, limit+1))
	switch {
	case err != nil:
		return nil, reject(http.StatusBadRequest, reasonMalformed, "store body: zlib: %v", err)
	case n > limit:
		return nil, reject(http.StatusRequestEntityTooLarge, reasonTooLarge, "store body is over the limit of %d bytes once decompressed", limit)
	}
	return buf.Bytes(), nil
}

// errBusy is what heldReader returns when the bodies in flight hold the
// whole budget.
var errBusy = errors.New("ingest: the bodies in flight hold the whole budget")

// heldReader holds what it reads against the handler's budget of bodies in
// flight.
type heldReader struct {
	r    io.Reader
	h    *Handler
	held *int64
}

func (hr *heldReader) Read(p []byte) (int, error) {
	n, err := hr.r.Read(p)
	if n > 0 && !hr.h.hold(hr.held, 2*int64(n)) {
		return n, errBusy
	}
	return n, err
}

// hold takes n bytes of the budget of bodies in flight for a request that
// holds *held already, and reports whether there was room. One request
// alone always has room up to its size limits.
func (h *Handler) hold(held *int64, n int64) bool {
	if h.cfg.maxInFlight <= 0 {
		return true
	}
	for {
		cur := h.inFlight.Load()
		if cur > *held && cur+n > h.cfg.maxInFlight {
			return false
		}
		if h.inFlight.CompareAndSwap(cur, cur+n) {
			*held += n
			return true
		}
	}
}
