package dedupgrpc

import "google.golang.org/grpc/codes"

// Option configures the server interceptors.
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// defaultCaptureCodes are the status codes of a server fault: what
// WithCaptureErrors captures when it is given none.
var defaultCaptureCodes = []codes.Code{codes.Internal, codes.Unknown, codes.DataLoss, codes.Unavailable}

// numCodes is how many status codes gRPC defines (OK to Unauthenticated).
const numCodes = int(codes.Unauthenticated) + 1

type config struct {
	// capture is nil unless WithCaptureErrors was given; capture[c] says
	// whether a returned error of code c is captured.
	capture *[numCodes]bool
}

func newConfig(options []Option) config {
	var c config
	for _, o := range options {
		if o != nil {
			o.apply(&c)
		}
	}
	return c
}

// captures reports whether a handler's returned error of code c is captured.
func (c *config) captures(code codes.Code) bool {
	return c.capture != nil && int(code) < len(c.capture) && c.capture[code]
}

// WithCaptureErrors makes the server interceptors capture a handler's
// returned error whose status code is a server fault, with
// sentryotel.CaptureException and the call's context (so with the hub in
// it, else the current hub), before the acknowledgement is decided: the
// caller is then told that the error was reported. The codes are those
// given, or Internal, Unknown, DataLoss and Unavailable when none are;
// codes outside gRPC's seventeen are ignored.
// A returned error is not captured when an error event of the call has
// already reached the deduplicator (the handler captured it itself, or
// sentrygrpc captured a panic): one failure, one event.
func WithCaptureErrors(codes ...codes.Code) Option {
	if len(codes) == 0 {
		codes = defaultCaptureCodes
	}
	var set [numCodes]bool
	for _, c := range codes {
		if int(c) < len(set) {
			set[c] = true
		}
	}
	return optionFunc(func(c *config) { c.capture = &set })
}
