package sentryapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tracedup/tracedup/internal/keys"
)

// The endpoints this package reads, as routes: Sentry rate-limits per caller
// and route, so these are also the keys of the per-endpoint gates.
const (
	// endpointProjectEvents is "List a Project's Error Events",
	// GET /api/0/projects/{org}/{project}/events/
	// (https://docs.sentry.io/api/events/list-a-projects-error-events/).
	// 60 requests a minute, one at a time. 100 events a page, or 10 with
	// full=true: Sentry caps full pages (its FULL_PAYLOAD_MAX_PER_PAGE).
	endpointProjectEvents = "projects/{org}/{project}/events"
	// endpointOrgEvents is "Query Discover Events in Table Format",
	// GET /api/0/organizations/{org}/events/
	// (https://docs.sentry.io/api/discover/query-discover-events-in-table-format/).
	endpointOrgEvents = "organizations/{org}/events"
	// endpointOrgProjects is "List an Organization's Projects",
	// GET /api/0/organizations/{org}/projects/.
	endpointOrgProjects = "organizations/{org}/projects"
	// endpointOrg is "Retrieve an Organization", GET /api/0/organizations/{org}/.
	endpointOrg = "organizations/{org}"
)

// orgPageSize is the Discover endpoint's per_page: its documented maximum.
const orgPageSize = 100

// Read is how events are read, which decides where their trace ids come
// from and what a read costs.
type Read int

const (
	// ReadAuto reads through Discover where the token (org:read) and the
	// plan allow it, and full events project by project otherwise: the
	// cheapest read that sees every event's trace id.
	ReadAuto Read = iota
	// ReadDiscover reads the organisation events endpoint (Discover) with
	// the trace, trace.span and trace.parent_span columns, 100 events a
	// page. It needs org:read and a plan with Discover.
	ReadDiscover
	// ReadFull reads each project's event list with full=true: contexts.trace
	// of every event, but 10 events a page. It needs project:read.
	ReadFull
	// ReadTags reads each project's plain event list, 100 events a page. It
	// carries tags but no contexts, so only events tagged by tracedup's
	// hook (otel.trace_id) have a trace id.
	ReadTags
)

var readNames = []string{"auto", "discover", "full", "tags"}

// String returns the read's name as ParseRead takes it.
func (r Read) String() string {
	if r < 0 || int(r) >= len(readNames) {
		return "Read(" + strconv.Itoa(int(r)) + ")"
	}
	return readNames[r]
}

// ParseRead returns the Read named s ("auto", "discover", "full", "tags").
func ParseRead(s string) (Read, error) {
	if i := slices.Index(readNames, strings.ToLower(strings.TrimSpace(s))); i >= 0 {
		return Read(i), nil
	}
	return 0, fmt.Errorf("want one of %s", strings.Join(readNames, ", "))
}

// describe says where a read's trace ids come from, for the progress line.
func (r Read) describe() string {
	switch r {
	case ReadDiscover:
		return "Discover, trace ids from its trace column, 100 a page"
	case ReadFull:
		return "full events, trace ids from contexts.trace, 10 a page"
	case ReadTags:
		return "event list, trace ids only from tracedup's otel.trace_id tag, 100 a page"
	}
	return r.String()
}

// Query selects the error events of one read.
type Query struct {
	// Org is the organisation slug (or id). Required.
	Org string
	// Projects are project slugs. Empty means every project of the
	// organisation the token can see.
	Projects []string
	// Start and End bound the events' time; End zero means now. Start is
	// required: an open range would read the whole retention period.
	Start, End time.Time
	// Read is how to read them; the zero value is ReadAuto.
	Read Read
}

// Events reads every error event q selects, following pagination to the end,
// and returns them oldest first, each event once.
//
// q.Read chooses the endpoint (see Read). ReadAuto and ReadDiscover fall back
// to reading Discover project by project when the plan cannot query several
// projects at once (Sentry's 400 "You cannot view events from multiple
// projects."). ReadAuto falls back to full events project by project when the
// plan has no Discover (a bare 404) or, with q.Projects, when the token lacks
// org:read (403). Each fallback, and a read that cannot see the trace ids of
// events without tracedup's tags, is told to the WithNotice function.
//
// On error, Events returns the events read so far with the error.
func (c *Client) Events(ctx context.Context, q Query) ([]Event, error) {
	if q.Org == "" {
		return nil, fmt.Errorf("sentry api: no organisation")
	}
	if q.Start.IsZero() {
		return nil, fmt.Errorf("sentry api: no start time")
	}
	if q.End.IsZero() {
		q.End = c.cfg.now()
	}
	if !q.Start.Before(q.End) {
		return nil, fmt.Errorf("sentry api: start %s is not before end %s", q.Start.Format(time.RFC3339), q.End.Format(time.RFC3339))
	}
	var all []Event
	var err error
	switch q.Read {
	case ReadFull, ReadTags:
		all, err = c.byProject(ctx, q, q.Read == ReadFull)
	case ReadDiscover:
		all, err = c.discover(ctx, q)
	default:
		all, err = c.discover(ctx, q)
		switch {
		case errors.Is(err, errNoDiscover):
			c.cfg.notice("the organisation's plan has no Discover (Sentry answered 404): reading full events project by project instead, 10 a page")
			all, err = c.byProject(ctx, q, true)
		case errors.Is(err, ErrForbidden) && len(q.Projects) > 0:
			c.cfg.notice("the token cannot read the organisation (Sentry answered 403; Discover needs " + ScopeOrganization +
				"): reading full events project by project instead, 10 a page; a token with " + ScopeOrganization + " reads 100 a page")
			all, err = c.byProject(ctx, q, true)
		}
	}
	return sortUnique(all), err
}

// discover reads q through the organisation events endpoint: all of q's
// projects in one query, else, when the plan refuses that, one by one.
func (c *Client) discover(ctx context.Context, q Query) ([]Event, error) {
	var projects []Project
	ids := []string{"-1"} // all projects the token can see
	if len(q.Projects) > 0 {
		var err error
		if projects, err = c.namedProjects(ctx, q.Org, q.Projects); err != nil {
			return nil, err
		}
		ids = ids[:0]
		for _, p := range projects {
			ids = append(ids, p.ID)
		}
	}
	all, err := c.OrganizationEvents(ctx, q.Org, ids, q.Start, q.End)
	if !errors.Is(err, errMultipleProjects) {
		return all, err
	}
	c.cfg.notice(fmt.Sprintf("Sentry answered %q: the organisation's plan cannot query several projects at once, so Discover is read project by project", multipleProjectsDetail))
	if projects == nil {
		if projects, err = c.Projects(ctx, q.Org); err != nil {
			return nil, err
		}
	}
	all = nil
	for _, p := range projects {
		evs, err := c.OrganizationEvents(ctx, q.Org, []string{p.ID}, q.Start, q.End)
		all = append(all, evs...)
		if err != nil {
			return all, err
		}
	}
	return all, nil
}

// byProject reads q's projects one after the other from each project's
// event list; without q.Projects, every project the token can see.
func (c *Client) byProject(ctx context.Context, q Query, full bool) ([]Event, error) {
	if !full {
		c.cfg.notice("the plain event list has no contexts.trace: only events tagged by tracedup's hook (otel.trace_id) get a trace id; " +
			"errors of services without the hook count as events without a trace (read with Discover or full events to see them)")
	}
	slugs := q.Projects
	if len(slugs) == 0 {
		projects, err := c.Projects(ctx, q.Org)
		if err != nil {
			return nil, err
		}
		for _, p := range projects {
			slugs = append(slugs, p.Slug)
		}
	}
	var all []Event
	for _, p := range slugs {
		evs, err := c.ProjectEvents(ctx, q.Org, p, q.Start, q.End, full)
		all = append(all, evs...)
		if errors.Is(err, ErrNotFound) {
			err = c.explainNotFound(ctx, err)
		}
		if err != nil {
			return all, err
		}
	}
	return all, nil
}

// explainNotFound sharpens the hint of a project endpoint's 404, which is the
// same for a wrong organisation and a wrong project, by asking Sentry whether
// the organisation exists.
func (c *Client) explainNotFound(ctx context.Context, err error) error {
	var e *Error
	if !errors.As(err, &e) {
		return err
	}
	org, project := orgAndProject(e.Path)
	probe := request{endpoint: endpointOrg, path: "/api/0/organizations/" + url.PathEscape(org) + "/", org: org}
	switch _, perr := c.get(ctx, probe); {
	case perr == nil:
		e.Hint = fmt.Sprintf("organisation %q exists, so project %q is likely wrong; check -project (the slug, as in the URL)", org, project)
	case errors.Is(perr, ErrNotFound):
		e.Hint = fmt.Sprintf("organisation %q does not exist or the token cannot see it; check -org (the slug, as in the URL)", org)
	}
	return e
}

// orgAndProject reads the slugs back from /api/0/projects/{org}/{project}/events/.
func orgAndProject(path string) (org, project string) {
	p := strings.Split(strings.Trim(path, "/"), "/")
	if len(p) < 5 {
		return "", ""
	}
	org, _ = url.PathUnescape(p[3])
	project, _ = url.PathUnescape(p[4])
	return org, project
}

// Project is a project of an organisation.
type Project struct {
	ID   string
	Slug string
}

// Projects lists the projects of org the token can see, from
// GET /api/0/organizations/{org}/projects/ (org:read).
func (c *Client) Projects(ctx context.Context, org string) ([]Project, error) {
	r := request{endpoint: endpointOrgProjects, path: "/api/0/organizations/" + url.PathEscape(org) + "/projects/", org: org}
	return paginate(ctx, c, r, "", func(body []byte) ([]Project, bool, error) {
		var page []struct {
			ID   flexString `json:"id"`
			Slug string     `json:"slug"`
		}
		if err := decodeStrict(body, &page); err != nil {
			return nil, false, err
		}
		ps := make([]Project, 0, len(page))
		for _, p := range page {
			ps = append(ps, Project{ID: string(p.ID), Slug: p.Slug})
		}
		return ps, false, nil
	})
}

// namedProjects returns the projects of org with the given slugs, in their
// order, or ErrNotFound naming the first slug the token cannot see.
func (c *Client) namedProjects(ctx context.Context, org string, slugs []string) ([]Project, error) {
	all, err := c.Projects(ctx, org)
	if err != nil {
		return nil, err
	}
	out := make([]Project, 0, len(slugs))
	for _, s := range slugs {
		i := slices.IndexFunc(all, func(p Project) bool { return p.Slug == s })
		if i < 0 {
			r := request{path: "/api/0/organizations/" + url.PathEscape(org) + "/projects/"}
			return nil, c.errorf(r, ErrNotFound, 0, fmt.Sprintf("project %q is not among the %d projects of organisation %q the token can see; check -project (the slug, as in the URL)", s, len(all), org), nil)
		}
		out = append(out, all[i])
	}
	return out, nil
}

// ProjectEvents reads the error events of one project between start and end
// from GET /api/0/projects/{org}/{project}/events/, full events if full.
//
// It sends start and end (ISO-8601, UTC) rather than statsPeriod so that the
// window stays put while the pages are read: the endpoint pages by offset,
// and a window sliding with the clock would shift the offsets under the
// cursor. It does not send query=: on this endpoint it is a substring match
// on the message, not a search; instead events whose type is present and not
// "error" are dropped here, as are events outside [start, end) in case the
// server ignores the range. The endpoint lists newest first, so reading stops
// at a page that is entirely older than start.
func (c *Client) ProjectEvents(ctx context.Context, org, project string, start, end time.Time, full bool) ([]Event, error) {
	q := url.Values{}
	q.Set("start", isoTime(start))
	q.Set("end", isoTime(end))
	read := ReadTags
	if full {
		q.Set("full", "true")
		read = ReadFull
	}
	r := request{
		endpoint: endpointProjectEvents,
		path:     "/api/0/projects/" + url.PathEscape(org) + "/" + url.PathEscape(project) + "/events/",
		org:      org, project: project, query: q,
	}
	return paginate(ctx, c, r, read.describe(), func(body []byte) ([]Event, bool, error) {
		var page []projectEvent
		if err := decodeStrict(body, &page); err != nil {
			return nil, false, err
		}
		evs := make([]Event, 0, len(page))
		allOlder := len(page) > 0
		for _, pe := range page {
			e := pe.event(project)
			if !e.DateCreated.IsZero() && !e.DateCreated.Before(start) {
				allOlder = false
			}
			if keep(e, start, end) {
				evs = append(evs, e)
			}
		}
		return evs, allOlder, nil
	})
}

// orgFields are the Discover columns read. trace, trace.span and
// trace.parent_span are contexts.trace, set on every event an SDK sent inside
// a trace, with or without tracedup's hook. Tags use the tags[key] form that
// Sentry's Discover parses (its TAG_KEY_RE); response keys echo the field. A
// name Discover does not know is read as a tag and comes back empty, so the
// platform is platform.name, not platform.
var orgFields = []string{
	"id", "issue.id", "project", "event.type", "title", "message", "platform.name", "timestamp",
	"trace", "trace.span", "trace.parent_span", "error.type", "error.value",
	"tags[" + keys.TagTraceID + "]", "tags[" + keys.TagSpanID + "]", "tags[" + keys.TagServiceName + "]",
}

// OrganizationEvents reads the error events of org's projects with the given
// ids ("-1": every project the token can see) between start and end, from the
// Discover endpoint GET /api/0/organizations/{org}/events/ with
// query=event.type:error, per_page=100 and start/end. It needs org:read.
func (c *Client) OrganizationEvents(ctx context.Context, org string, projectIDs []string, start, end time.Time) ([]Event, error) {
	q := url.Values{}
	q["field"] = orgFields
	q["project"] = projectIDs
	q.Set("query", "event.type:error")
	q.Set("sort", "-timestamp")
	q.Set("per_page", strconv.Itoa(orgPageSize))
	q.Set("start", isoTime(start))
	q.Set("end", isoTime(end))
	r := request{
		endpoint: endpointOrgEvents,
		path:     "/api/0/organizations/" + url.PathEscape(org) + "/events/",
		org:      org, query: q,
	}
	return paginate(ctx, c, r, ReadDiscover.describe(), func(body []byte) ([]Event, bool, error) {
		var page struct {
			Data []discoverRow `json:"data"`
		}
		if err := decodeStrict(body, &page); err != nil {
			return nil, false, err
		}
		if page.Data == nil && !bytes.Contains(body, []byte(`"data"`)) {
			return nil, false, fmt.Errorf(`no "data" list in the body`)
		}
		evs := make([]Event, 0, len(page.Data))
		for _, row := range page.Data {
			if e := row.event(); keep(e, start, end) {
				evs = append(evs, e)
			}
		}
		return evs, false, nil
	})
}

// paginate reads r page by page, following the Link header's next cursor
// while it says results="true". decode turns a body into items and says
// whether reading may stop early. A read with a description (read) reports
// each page to the progress function.
func paginate[T any](ctx context.Context, c *Client, r request, read string, decode func([]byte) ([]T, bool, error)) ([]T, error) {
	var all []T
	seen := map[string]bool{}
	name := strings.Trim(strings.TrimPrefix(r.path, "/api/0"), "/")
	for page := 1; ; page++ {
		if page > c.cfg.maxPages {
			return all, c.errorf(r, ErrPagination, 0, fmt.Sprintf("more than %d pages; narrow -since", c.cfg.maxPages), nil)
		}
		r.page = page
		resp, err := c.get(ctx, r)
		if err != nil {
			return all, err
		}
		items, stop, err := decode(resp.body)
		if err != nil {
			return all, c.errorf(r, ErrMalformed, http.StatusOK, "", err)
		}
		all = append(all, items...)
		if read != "" {
			c.cfg.progress(Progress{
				Endpoint: name, Read: read, Pages: page, Events: len(all), Waited: resp.waited,
				RateLimitRemaining: resp.limits.remaining, ConcurrentRemaining: resp.limits.concurrentRemaining,
			})
		}
		next, ok := NextCursor(resp.header.Get("Link"))
		if !ok || stop {
			return all, nil
		}
		if seen[next] || next == r.cursor {
			return all, c.errorf(r, ErrPagination, 0, fmt.Sprintf("the next cursor %q was already read", next), nil)
		}
		seen[next] = true
		r.cursor = next
	}
}

// keep reports whether an event is an error event inside [start, end).
func keep(e Event, start, end time.Time) bool {
	if e.Type != "" && e.Type != "error" {
		return false
	}
	if e.DateCreated.IsZero() {
		return true // cannot tell; the server filtered by time
	}
	return !e.DateCreated.Before(start) && e.DateCreated.Before(end)
}

// sortUnique orders events oldest first and drops repeated event ids (an
// event can appear on two pages when new events shift the offsets).
func sortUnique(evs []Event) []Event {
	slices.SortStableFunc(evs, func(a, b Event) int {
		if c := a.DateCreated.Compare(b.DateCreated); c != 0 {
			return c
		}
		return strings.Compare(a.EventID, b.EventID)
	})
	return slices.CompactFunc(evs, func(a, b Event) bool { return a.EventID != "" && a.EventID == b.EventID })
}

// isoTime formats t as the ISO-8601 the API documents for start and end.
func isoTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05") }

// parseTime reads the API's timestamps: RFC 3339 with or without fraction,
// and the zone-less ISO-8601 form, taken as UTC.
func parseTime(s string) time.Time {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}
