package sentryapi

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors, to test with errors.Is. The errors this package returns
// wrap them in an *Error that says which request failed and why.
var (
	// ErrUnauthorized: Sentry answered 401, the token was rejected.
	ErrUnauthorized = errors.New("token rejected")
	// ErrForbidden: Sentry answered 403, the token lacks a scope or access
	// to the project.
	ErrForbidden = errors.New("token lacks the required scope")
	// ErrNotFound: Sentry answered 404, the organisation or project does not
	// exist or is not visible to the token.
	ErrNotFound = errors.New("not found")
	// ErrRateLimited: Sentry kept answering 429 after every retry.
	ErrRateLimited = errors.New("rate limited")
	// ErrMalformed: a response body was not the JSON the endpoint documents.
	ErrMalformed = errors.New("malformed response body")
	// ErrNetwork: the request did not get a response.
	ErrNetwork = errors.New("network error")
	// ErrStatus: any other unexpected HTTP status.
	ErrStatus = errors.New("unexpected status")
	// ErrPagination: the Link header did not lead anywhere new, or there
	// were more pages than the client's bound.
	ErrPagination = errors.New("pagination")
)

// Error is a failed request to the Sentry API. Its message names the request
// (method, path and page, never the token) and what to do about it.
type Error struct {
	// Kind is one of the sentinel errors above; Unwrap returns it.
	Kind error
	// Method and Path name the request ("GET", "/api/0/projects/acme/web/events/").
	Method, Path string
	// Page is the 1-based page of a paginated read, 0 when not paginated.
	Page int
	// StatusCode is the HTTP status, 0 when there was no response.
	StatusCode int
	// Hint says what is likely wrong and how to fix it.
	Hint string
	// Detail is Sentry's own explanation (the "detail" of the body), if any.
	Detail string
	// Err is the underlying error (network, JSON), if any.
	Err error
}

// Error returns the message: "sentry api: GET /api/0/...(page 2): 403
// token lacks the required scope: <hint> (sentry says: ...)".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("sentry api: ")
	if e.Method != "" {
		fmt.Fprintf(&b, "%s %s", e.Method, e.Path)
		if e.Page > 0 {
			fmt.Fprintf(&b, " (page %d)", e.Page)
		}
		b.WriteString(": ")
	}
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, "%d ", e.StatusCode)
	}
	if e.Kind != nil {
		b.WriteString(e.Kind.Error())
	}
	if e.Hint != "" {
		b.WriteString(": ")
		b.WriteString(e.Hint)
	}
	if e.Detail != "" {
		fmt.Fprintf(&b, " (sentry says: %q)", e.Detail)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the sentinel Kind and the underlying error, so that both
// errors.Is(err, ErrForbidden) and errors.Is(err, context.Canceled) work.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// redact removes the token from s. The client never puts the token anywhere
// but the Authorization header; this is the belt to those braces, for error
// text that quotes something the server or a proxy echoed back. The token is
// removed when an *Error is built, so that the Error holds no copy of it.
func redact(s, token string) string {
	if token == "" {
		return s
	}
	return strings.ReplaceAll(s, token, "[redacted]")
}
