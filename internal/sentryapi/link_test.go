package sentryapi

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sentryLink is the Link header of Sentry's pagination documentation
// (https://docs.sentry.io/api/pagination/), first page of two.
const sentryLink = `<https://sentry.io/api/0/organizations/acme/issues/123456/events/?&cursor=0:0:1>; rel="previous"; results="false"; cursor="0:0:1", ` +
	`<https://sentry.io/api/0/organizations/acme/issues/123456/events/?&cursor=0:100:0>; rel="next"; results="true"; cursor="0:100:0"`

func TestParseLink(t *testing.T) {
	links := ParseLink(sentryLink)
	require.Len(t, links, 2)
	assert.Equal(t, Link{
		URL:     "https://sentry.io/api/0/organizations/acme/issues/123456/events/?&cursor=0:0:1",
		Rel:     "previous",
		Results: false,
		Cursor:  "0:0:1",
		Params:  map[string]string{"rel": "previous", "results": "false", "cursor": "0:0:1"},
	}, links[0])
	assert.Equal(t, "next", links[1].Rel)
	assert.True(t, links[1].Results)
	assert.Equal(t, "0:100:0", links[1].Cursor)
}

func TestNextCursor(t *testing.T) {
	tests := []struct {
		name, header string
		cursor       string
		ok           bool
	}{
		{"documented first page", sentryLink, "0:100:0", true},
		{"last page", `<https://x/?cursor=0:0:1>; rel="previous"; results="true"; cursor="0:0:1", <https://x/?cursor=0:200:0>; rel="next"; results="false"; cursor="0:200:0"`, "0:200:0", false},
		{"empty", "", "", false},
		{"garbage", "not a link header at all", "", false},
		{"next first", `<https://x/?cursor=a>; rel="next"; results="true"; cursor="1700000000000:0:0", <https://x/>; rel="previous"; results="false"; cursor="0:0:1"`, "1700000000000:0:0", true},
		{"no spaces", `<https://x/?a=1>;rel="previous";results="false";cursor="0:0:1",<https://x/?a=1>;rel="next";results="true";cursor="0:100:0"`, "0:100:0", true},
		{"unquoted values, odd case", `<https://x/>; REL=next; Results=TRUE; Cursor=0:100:0`, "0:100:0", true},
		{"cursor only in URL", `<https://x/?per_page=100&cursor=0%3A100%3A0>; rel="next"; results="true"`, "0:100:0", true},
		{"comma inside URL", `<https://x/?field=a,b&cursor=0:5:0>; rel="next"; results="true"; cursor="0:5:0"`, "0:5:0", true},
		{"comma and semicolon in quotes", `<https://x/>; rel="next"; title="a, b; c"; results="true"; cursor="0:7:0"`, "0:7:0", true},
		{"escaped quote", `<https://x/>; rel="next"; title="say \"hi\", ok"; results="true"; cursor="0:8:0"`, "0:8:0", true},
		{"several relation types", `<https://x/>; rel="next last"; results="true"; cursor="0:9:0"`, "0:9:0", true},
		{"results missing", `<https://x/>; rel="next"; cursor="0:100:0"`, "0:100:0", false},
		{"cursor missing", `<https://x/>; rel="next"; results="true"`, "", false},
		{"entry without URL skipped", `rel="next"; results="true"; cursor="bad", <https://x/>; rel="next"; results="true"; cursor="0:1:0"`, "0:1:0", true},
		{"unterminated angle", `<https://x/; rel="next"; results="true"; cursor="0:1:0"`, "", false},
		{"first rel next wins", `<https://x/>; rel="next"; results="false"; cursor="0:1:0", <https://y/>; rel="next"; results="true"; cursor="0:2:0"`, "0:1:0", false},
		{"duplicate param, first wins", `<https://x/>; rel="next"; results="true"; results="false"; cursor="0:3:0"`, "0:3:0", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cursor, ok := NextCursor(tt.header)
			assert.Equal(t, tt.ok, ok, "ok for %q", tt.header)
			assert.Equal(t, tt.cursor, cursor, "cursor for %q", tt.header)
		})
	}
}

func FuzzParseLink(f *testing.F) {
	for _, s := range []string{
		sentryLink, "", "<", ">", `<a>; rel="next"; results="true"; cursor="x"`, `<a,b>;x="\"",<c>`,
		`<https://x/?cursor=0%3A1%3A0>; rel=next; results=true`, "<%zz>; rel=next",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		links := ParseLink(header) // must not panic
		for _, l := range links {
			if strings.ContainsRune(l.URL, '>') {
				t.Fatalf("URL %q contains '>'", l.URL)
			}
			if l.Rel != strings.ToLower(l.Rel) {
				t.Fatalf("rel %q not lower-cased", l.Rel)
			}
		}
		cursor, ok := NextCursor(header)
		if ok && cursor == "" {
			t.Fatalf("ok with an empty cursor for %q", header)
		}
	})
}
