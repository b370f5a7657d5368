package sentryapi

import (
	"net/url"
	"strings"
)

// Link is one entry of an HTTP Link header (RFC 8288) as Sentry writes it:
//
//	<https://sentry.io/api/0/...&cursor=0:100:0>; rel="next"; results="true"; cursor="0:100:0"
type Link struct {
	// URL is the target between the angle brackets, unparsed.
	URL string
	// Rel is the rel parameter ("next", "previous"), lower-cased.
	Rel string
	// Results reports whether Sentry says there are results behind the link
	// (results="true"). Sentry always sends both a previous and a next link,
	// and marks the empty one results="false".
	Results bool
	// Cursor is the cursor parameter, or, where it is missing, the cursor
	// query parameter of URL.
	Cursor string
	// Params holds every parameter by lower-cased name, quotes removed.
	Params map[string]string
}

// ParseLink parses a Link header value into its entries. It never fails:
// entries without a <URL> are skipped, and a malformed parameter is ignored,
// so that one odd entry cannot hide the next link.
func ParseLink(header string) []Link {
	var links []Link
	for _, entry := range splitOutside(header, ',') {
		entry = strings.TrimSpace(entry)
		if !strings.HasPrefix(entry, "<") {
			continue
		}
		end := strings.IndexByte(entry, '>')
		if end < 0 {
			continue
		}
		l := Link{URL: strings.TrimSpace(entry[1:end]), Params: map[string]string{}}
		for _, param := range splitOutside(entry[end+1:], ';') {
			name, value, ok := strings.Cut(param, "=")
			name = strings.ToLower(strings.TrimSpace(name))
			if name == "" {
				continue
			}
			if ok {
				value = unquote(strings.TrimSpace(value))
			}
			if _, seen := l.Params[name]; !seen { // RFC 8288: the first occurrence wins
				l.Params[name] = value
			}
		}
		l.Rel = strings.ToLower(l.Params["rel"])
		l.Results = strings.EqualFold(l.Params["results"], "true")
		l.Cursor = l.Params["cursor"]
		if l.Cursor == "" {
			if u, err := url.Parse(l.URL); err == nil {
				l.Cursor = u.Query().Get("cursor")
			}
		}
		links = append(links, l)
	}
	return links
}

// NextCursor returns the cursor of the page after the one whose Link header
// is given. ok is false on the last page: when there is no rel="next" entry,
// when it says results="false", or when it carries no cursor.
func NextCursor(header string) (cursor string, ok bool) {
	for _, l := range ParseLink(header) {
		for _, rel := range strings.Fields(l.Rel) { // rel may hold several relation types
			if rel == "next" {
				return l.Cursor, l.Results && l.Cursor != ""
			}
		}
	}
	return "", false
}

// splitOutside splits s at sep where sep is neither inside <...> nor inside
// a quoted string, so that commas in URLs and quoted values survive.
func splitOutside(s string, sep byte) []string {
	var parts []string
	inAngle, inQuote, escaped := false, false, false
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case escaped:
			escaped = false
		case inQuote && c == '\\':
			escaped = true
		case c == '"' && !inAngle:
			inQuote = !inQuote
		case c == '<' && !inQuote:
			inAngle = true
		case c == '>' && !inQuote:
			inAngle = false
		case c == sep && !inAngle && !inQuote:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// unquote removes the quotes of a quoted-string and its backslash escapes;
// a token (no quotes) is returned as it is.
func unquote(v string) string {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return strings.Trim(v, `"`)
	}
	v = v[1 : len(v)-1]
	if !strings.Contains(v, `\`) {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String()
}
