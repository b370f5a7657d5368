package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/tracedup/tracedup/rootcause"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// runCmd runs the command and checks that the token is in neither output.
func runCmd(t *testing.T, vars map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, env(vars), &out, &errOut)
	assert.NotContains(t, out.String(), testToken, "token on stdout")
	assert.NotContains(t, errOut.String(), testToken, "token on stderr")
	return code, out.String(), errOut.String()
}

var withToken = map[string]string{tokenEnv: testToken}

func TestTable(t *testing.T) {
	f := newFixture(t)
	code, out, errOut := runCmd(t, withToken, "-url", f.URL, "-org", "acme", "-project", "gateway, order,payment", "-since", "24h")
	require.Equal(t, exitOK, code, errOut)
	t.Log("\n" + out)

	assert.Contains(t, errOut, "reading organizations/acme/events (Discover, trace ids from its trace column, 100 a page): page 5, 9 error events")
	assert.Contains(t, out, "Duplicate report for acme/gateway,order,payment, last 24h, strategy Deepest")
	assert.Regexp(t, `error events read\s+9\n`, out)
	assert.Regexp(t, `traces\s+3\n`, out)
	assert.Regexp(t, `known cascades\s+3\s+\(in 3 traces; 6 known duplicate events\)\n`, out)
	assert.Regexp(t, `traces, link not known\s+0 `, out)

	var roots, symptoms []string
	section := ""
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "Known cascades"):
			section = "cascades"
		case strings.HasPrefix(line, "Known symptoms"):
			section = "symptoms"
		case strings.HasPrefix(line, "Likely symptoms"):
			section = "likely"
		case section == "cascades" && strings.Contains(line, "<- root cause"):
			roots = append(roots, strings.Join(strings.Fields(line), " "))
		case section == "symptoms" && line != "" && !strings.HasPrefix(line, "ISSUE"):
			symptoms = append(symptoms, strings.Join(strings.Fields(line), " "))
		}
	}
	require.Len(t, roots, 3, "one root cause per trace")
	for _, l := range roots {
		assert.Contains(t, l, "payment 300 ", "payment's issue is the root cause: %s", l)
		assert.Contains(t, l, "*main.PaymentDeclined")
	}
	require.Len(t, symptoms, 2)
	assert.True(t, strings.HasPrefix(symptoms[0], `100 *main.DownstreamError: order service: 502 Bad Gateway gateway 3 3 300 "*main.PaymentDeclined: card declined" (3 traces)`), symptoms[0])
	assert.True(t, strings.HasPrefix(symptoms[1], `200 *main.DownstreamError: payment service: 502 Bad Gateway order 3 3 300 "*main.PaymentDeclined: card declined" (3 traces)`), symptoms[1])

	for _, u := range f.requests() {
		assert.NotContains(t, u, testToken)
	}
}

// jsonOut is the part of the -json output the tests read.
type jsonOut struct {
	Org                  string   `json:"org"`
	Projects             []string `json:"projects"`
	Strategy             string   `json:"strategy"`
	EventsRead           int      `json:"events_read"`
	Traces               int      `json:"traces"`
	TracesWithDuplicates int      `json:"traces_with_known_cascades"`
	DuplicateEvents      int      `json:"known_duplicate_events"`
	Cascades             []struct {
		TraceID   string   `json:"trace_id"`
		RootIssue string   `json:"root_issue"`
		Services  []string `json:"services"`
		Events    []struct {
			Service   string `json:"service"`
			IssueID   string `json:"issue_id"`
			RootCause bool   `json:"root_cause"`
		} `json:"events"`
	} `json:"cascades"`
	SymptomIssues []struct {
		IssueID   string   `json:"issue_id"`
		Services  []string `json:"services"`
		Traces    int      `json:"traces"`
		SymptomOf []struct {
			IssueID string `json:"issue_id"`
			Traces  int    `json:"traces"`
		} `json:"symptom_of"`
	} `json:"known_symptoms"`
}

func TestJSON(t *testing.T) {
	for name, args := range map[string][]string{
		"projects":          {"-project", "gateway,order,payment"},
		"organisation-wide": {},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			code, out, errOut := runCmd(t, withToken, append([]string{"-url", f.URL, "-org", "acme", "-json"}, args...)...)
			require.Equal(t, exitOK, code, errOut)
			var r jsonOut
			require.NoError(t, json.Unmarshal([]byte(out), &r), out)

			assert.Equal(t, "acme", r.Org)
			assert.Equal(t, 9, r.EventsRead)
			assert.Equal(t, 3, r.Traces)
			assert.Equal(t, 3, r.TracesWithDuplicates)
			assert.Equal(t, 6, r.DuplicateEvents)
			require.Len(t, r.Cascades, 3)
			for _, c := range r.Cascades {
				assert.Equal(t, "300", c.RootIssue, "trace %s", c.TraceID)
				assert.ElementsMatch(t, []string{"gateway", "order", "payment"}, c.Services)
				for _, e := range c.Events {
					assert.Equal(t, e.Service == "payment", e.RootCause, "%+v", e)
				}
			}
			require.Len(t, r.SymptomIssues, 2)
			for i, want := range []struct{ issue, service string }{{"100", "gateway"}, {"200", "order"}} {
				s := r.SymptomIssues[i]
				assert.Equal(t, want.issue, s.IssueID)
				assert.Equal(t, []string{want.service}, s.Services)
				assert.Equal(t, 3, s.Traces)
				require.Len(t, s.SymptomOf, 1)
				assert.Equal(t, "300", s.SymptomOf[0].IssueID)
				assert.Equal(t, 3, s.SymptomOf[0].Traces)
			}
			if len(args) == 0 {
				require.NotEmpty(t, f.requests())
				assert.Contains(t, f.requests()[0], "/api/0/organizations/acme/events/")
				assert.Contains(t, f.requests()[0], "project=-1")
			}
		})
	}
}

func TestStrategyFlag(t *testing.T) {
	f := newFixture(t)
	// Earliest trusts the clocks, and order's clock runs 40 ms slow. Full
	// events carry the milliseconds; Discover's timestamps are whole seconds.
	code, out, errOut := runCmd(t, withToken, "-url", f.URL, "-org", "acme", "-project", "gateway,order,payment", "-json", "-strategy", "earliest", "-read", "full")
	require.Equal(t, exitOK, code, errOut)
	var r jsonOut
	require.NoError(t, json.Unmarshal([]byte(out), &r))
	assert.Equal(t, "Earliest", r.Strategy)
	for _, c := range r.Cascades {
		assert.Equal(t, "200", c.RootIssue)
	}

	code, out, errOut = runCmd(t, withToken, "-url", f.URL, "-org", "acme", "-project", "gateway,order,payment", "-json",
		"-strategy", "earliest", "-demote", "DownstreamError", "-read", "full")
	require.Equal(t, exitOK, code, errOut)
	r = jsonOut{}
	require.NoError(t, json.Unmarshal([]byte(out), &r))
	assert.Contains(t, r.Strategy, "Earliest")
	for _, c := range r.Cascades {
		assert.Equal(t, "300", c.RootIssue, "the wrapper types are demoted")
	}
}

func TestParseStrategy(t *testing.T) {
	for _, tt := range []struct{ names, demote, want string }{
		{"default", "", "Deepest"},
		{"", "", "Deepest"},
		{"Non-Root-First", "", "NonRootFirst"},
		{"deepest,earliest", "", "FirstOf{Deepest"},
	} {
		s, err := parseStrategy(tt.names, tt.demote)
		require.NoError(t, err, tt.names)
		desc := rootcause.Describe(s)
		assert.True(t, strings.HasPrefix(desc, tt.want), "%q: %s", tt.names, desc)
	}
	_, err := parseStrategy("smartest", "")
	assert.ErrorContains(t, err, "want one of default, deepest, earliest, nonrootfirst")
}

func TestUsageErrors(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name string
		vars map[string]string
		args []string
		code int
		want string
	}{
		{"no token", nil, []string{"-org", "acme"}, exitUsage, "SENTRY_AUTH_TOKEN is not set"},
		{"no token names the scopes", map[string]string{}, []string{"-org", "acme", "-project", "x"}, exitUsage, "org:read to read the whole organisation"},
		{"no token names the kind of token", map[string]string{}, []string{"-org", "acme"}, exitUsage, "personal token"},
		{"bad -read", withToken, []string{"-org", "acme", "-read", "fast"}, exitUsage, `-read "fast": want one of auto, discover, full, tags`},
		{"missing -org", withToken, []string{"-project", "web"}, exitUsage, "-org is required"},
		{"bad -since", withToken, []string{"-org", "acme", "-since", "yesterday"}, exitUsage, `-since "yesterday": want a positive duration`},
		{"negative -since", withToken, []string{"-org", "acme", "-since", "-1h"}, exitUsage, "positive duration"},
		{"bad -strategy", withToken, []string{"-org", "acme", "-strategy", "magic"}, exitUsage, "-strategy"},
		{"bad -url", withToken, []string{"-org", "acme", "-url", "sentry.io"}, exitUsage, "-url"},
		{"stray argument", withToken, []string{"-org", "acme", "extra"}, exitUsage, "unexpected arguments"},
		{"unknown flag", withToken, []string{"-org", "acme", "-verbose"}, exitUsage, "flag provided but not defined"},
		{"401", map[string]string{tokenEnv: "wrong-token"}, []string{"-url", f.URL, "-org", "acme", "-project", "web"}, exitError, "401 token rejected"},
		{"404 project", withToken, []string{"-url", f.URL, "-org", "acme", "-project", "nosuch"}, exitError, `project "nosuch" is not among the 3 projects`},
		{"404 project, full events", withToken, []string{"-url", f.URL, "-org", "acme", "-project", "nosuch", "-read", "full"}, exitError, `project "nosuch" is likely wrong`},
		{"404 organisation", withToken, []string{"-url", f.URL, "-org", "nosuch", "-project", "web"}, exitError, `organisation "nosuch" does not exist`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, tt.vars, tt.args...)
			assert.Equal(t, tt.code, code, errOut)
			assert.Contains(t, errOut, tt.want)
			assert.Empty(t, out)
			assert.NotContains(t, errOut, "wrong-token")
		})
	}
}

func TestAPIErrors(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    string
	}{
		{"403", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusForbidden) }, "project:read"},
		{"malformed", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`{"tags": "not a list"`)) }, "page 1): 200 malformed response body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.SetHandler(tt.handler)
			code, out, errOut := runCmd(t, withToken, "-url", f.URL, "-org", "acme", "-project", "payment")
			assert.Equal(t, exitError, code)
			assert.Contains(t, errOut, tt.want)
			assert.Empty(t, out)
		})
	}
}

func TestNetworkError(t *testing.T) {
	f := newFixture(t)
	url := f.URL
	f.Close()
	code, out, errOut := runCmd(t, withToken, "-url", url, "-org", "acme", "-project", "payment")
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "network error")
	assert.Empty(t, out)
}

func TestHelp(t *testing.T) {
	code, out, errOut := runCmd(t, nil, "-help")
	assert.Equal(t, exitOK, code)
	assert.Empty(t, out)
	for _, s := range []string{"-project", "comma-separated", "every project of -org", "SENTRY_AUTH_TOKEN", "never printed", "-strategy", "-json", "-since", "-url"} {
		assert.Contains(t, errOut, s)
	}
}

// TestServicesWithoutTheHook reads an organisation where only the gateway
// runs tracedup's hook: order's and payment's events carry no otel tags,
// only their trace context. Every read that sees trace contexts finds the
// three cascades and payment's root cause; the tag-only read says it cannot.
func TestServicesWithoutTheHook(t *testing.T) {
	tests := []struct {
		name       string
		noDiscover bool
		args       []string
		note       string
		traces     int // with duplicates
	}{
		{"Discover", false, nil, "", 3},
		{"no Discover: full events", true, nil, "no Discover", 3},
		{"full events asked for", false, []string{"-read", "full"}, "", 3},
		{"tags only", false, []string{"-read", "tags"}, "only events tagged by tracedup's hook", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, "order", "payment")
			f.noDiscover = tt.noDiscover
			code, out, errOut := runCmd(t, withToken, append([]string{"-url", f.URL, "-org", "acme", "-json"}, tt.args...)...)
			require.Equal(t, exitOK, code, errOut)
			if tt.note != "" {
				assert.Contains(t, errOut, "dedup-report: note: ")
				assert.Contains(t, errOut, tt.note)
			}
			var r jsonOut
			require.NoError(t, json.Unmarshal([]byte(out), &r), out)
			assert.Equal(t, 9, r.EventsRead)
			assert.Equal(t, tt.traces, r.TracesWithDuplicates, errOut)
			if tt.traces == 0 {
				return
			}
			require.Len(t, r.Cascades, 3)
			for _, c := range r.Cascades {
				assert.Equal(t, "300", c.RootIssue, "payment's issue is the root cause of trace %s", c.TraceID)
				assert.ElementsMatch(t, []string{"gateway", "order", "payment"}, c.Services, "unhooked services named by their project")
			}
		})
	}
}

// TestStrategiesOneTable checks that every strategy of the table parses and
// shows in the help, so that the two cannot drift apart.
func TestStrategiesOneTable(t *testing.T) {
	_, _, help := runCmd(t, nil, "-help")
	for _, s := range strategies {
		_, err := parseStrategy(s.name, "")
		assert.NoError(t, err, s.name)
		assert.Contains(t, help, s.name)
		assert.Contains(t, help, s.desc)
	}
	_, err := parseStrategy("smartest", "")
	assert.ErrorContains(t, err, strategyNames())
}
