package sentryapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
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

// Causes the reads tell apart to choose a fallback (see Client.Events).
var (
	// errNoDiscover: the organisation events endpoint answered a bare 404,
	// as it does on a plan without Discover.
	errNoDiscover = errors.New("no Discover on this plan")
	// errMultipleProjects: the organisation events endpoint refused to read
	// several projects at once, as it does without the global-views feature.
	errMultipleProjects = errors.New("several projects at once need the global-views feature")
)

// multipleProjectsDetail is Sentry's detail of errMultipleProjects's 400.
const multipleProjectsDetail = "You cannot view events from multiple projects"

// Error is a failed request to the Sentry API. Its message names the request
// (method, path and page, never the token) and what to do about it.
type Error struct {
	// Kind is one of the sentinel errors above, or the context's error
	// (context.Canceled, context.DeadlineExceeded) when the caller's context
	// ended the request; Unwrap returns it.
	Kind error
	// Method and Path name the request ("GET", "/api/0/projects/acme/web/events/").
	Method, Path string
	// Page is the 1-based page of a paginated read, 0 when not paginated.
	Page int
	// StatusCode is the HTTP status, 0 when there was no response.
	StatusCode int
	// Hint says what is likely wrong and how to fix it.
	Hint string
	// Detail is Sentry's own explanation (the "detail" of the body, or the
	// bare JSON string a 429 carries), if any.
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

// The token scopes each read needs. Sentry guards the organisation endpoints
// (Discover's events, the project list) with OrganizationPermission, whose GET
// wants org:read, and a project's event list with ProjectPermission, whose GET
// wants project:read.
const (
	ScopeOrganization = "org:read"
	ScopeProject      = "project:read"
)

// TokenHint says which token to make. Settings > Auth Tokens makes
// Organization Auth Tokens, which carry only org:ci and cannot read events.
const TokenHint = "use a personal token (User Settings > Personal Tokens) or an internal integration's token " +
	"(Settings > Developer Settings > Custom Integrations), not an Organization Auth Token, which cannot read events; " +
	"give it " + ScopeOrganization + " to read the whole organisation through Discover, and " +
	ScopeProject + " to read projects one by one"

// classify turns a non-2xx, non-retryable status into an *Error. It makes no
// request: where a 404 leaves open whether the organisation or the project is
// wrong, the read that got it asks (see explainNotFound).
func (c *Client) classify(r request, status int, body []byte) error {
	switch status {
	case http.StatusUnauthorized:
		return c.statusError(r, ErrUnauthorized, status, "SENTRY_AUTH_TOKEN is invalid, expired or revoked; "+TokenHint, body)
	case http.StatusForbidden:
		return c.statusError(r, ErrForbidden, status, scopeHint(r.endpoint), body)
	case http.StatusNotFound:
		err := c.statusError(r, ErrNotFound, status, c.notFoundHint(r, body), body)
		if r.endpoint == endpointOrgEvents && len(bytes.TrimSpace(body)) == 0 {
			err.(*Error).Err = errNoDiscover
		}
		return err
	case http.StatusBadRequest:
		err := c.statusError(r, ErrStatus, status, "Sentry rejected the query", body)
		if r.endpoint == endpointOrgEvents && strings.Contains(sentryDetail(body), multipleProjectsDetail) {
			err.(*Error).Err = errMultipleProjects
		}
		return err
	}
	return c.statusError(r, ErrStatus, status, "", body)
}

// scopeHint names the scope an endpoint needs and the token that can carry it.
func scopeHint(endpoint string) string {
	switch endpoint {
	case endpointProjectEvents, endpointEventDetails:
		return "the token needs the " + ScopeProject + " scope, and its user must be a member of the project's team; " + TokenHint
	case endpointOrgEvents, endpointOrgProjects, endpointOrg:
		return "the token needs the " + ScopeOrganization + " scope to read the whole organisation (or name the projects with -project, which needs " + ScopeProject + "); " + TokenHint
	}
	return "the token lacks a scope this endpoint needs; " + TokenHint
}

// notFoundHint says what a 404 likely means without asking Sentry more.
func (c *Client) notFoundHint(r request, body []byte) string {
	switch {
	case r.endpoint == endpointOrgEvents && len(bytes.TrimSpace(body)) == 0:
		// The organisation exists (a wrong slug gets a body): the endpoint
		// answers a bare 404 when the plan has no Discover.
		return "the organisation's plan has no Discover (query events); name the projects with -project or read full events"
	case r.endpoint == endpointProjectEvents:
		return fmt.Sprintf("organisation %q or project %q does not exist or the token cannot see it; check -org and -project (the slugs, as in the URL)", r.org, r.project)
	}
	return fmt.Sprintf("organisation %q does not exist or the token cannot see it; check -org (the slug, as in the URL)", r.org)
}

// gaveUp builds the error of a request still refused after every retry.
func (c *Client) gaveUp(r request, status, retries int, body []byte) error {
	if status == http.StatusTooManyRequests {
		return c.statusError(r, ErrRateLimited, status, fmt.Sprintf("still rate limited after %d retries; try again later or narrow -since", retries), body)
	}
	return c.statusError(r, ErrStatus, status, fmt.Sprintf("Sentry kept failing after %d retries", retries), body)
}

// cancelled builds the error of a request that ctx ended: the context's own
// error, so that errors.Is(err, context.Canceled) holds and no network
// trouble is blamed.
func (c *Client) cancelled(r request, while string, ctx context.Context) error {
	hint := "interrupted"
	if while != "" {
		hint += " " + while
	}
	return c.errorf(r, context.Cause(ctx), 0, hint, nil)
}

// statusError builds the *Error of an HTTP failure, with Sentry's detail.
func (c *Client) statusError(r request, kind error, status int, hint string, body []byte) error {
	e := c.errorf(r, kind, status, hint, nil).(*Error)
	e.Detail = redact(sentryDetail(body), c.token)
	return e
}

// errorf builds an *Error that holds no copy of the token.
func (c *Client) errorf(r request, kind error, status int, hint string, err error) error {
	if err != nil && strings.Contains(err.Error(), c.token) {
		// Never seen in practice; if it happens, the chain is given up for
		// the token's sake.
		err = errors.New(redact(err.Error(), c.token))
	}
	return &Error{
		Kind: kind, Method: http.MethodGet, Path: redact(r.path, c.token), Page: r.page,
		StatusCode: status, Hint: redact(hint, c.token), Err: err,
	}
}

// maxDetail bounds the detail quoted from a body.
const maxDetail = 200

// sentryDetail extracts Sentry's explanation from an error body: the
// "detail" of an object (most errors), or a bare JSON string (the 429 of
// Sentry's rate-limit middleware). It is shortened to maxDetail bytes on a
// rune boundary; a body of any other shape gives "".
func sentryDetail(body []byte) string {
	var s string
	if json.Unmarshal(body, &s) != nil {
		var v struct {
			Detail json.RawMessage `json:"detail"`
		}
		if json.Unmarshal(body, &v) != nil || len(v.Detail) == 0 {
			return ""
		}
		if json.Unmarshal(v.Detail, &s) != nil {
			s = string(v.Detail)
		}
	}
	if len(s) > maxDetail {
		cut := maxDetail
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
