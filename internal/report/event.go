package report

import "github.com/tracedup/tracedup/rootcause"

// Event is one error event as the report sees it: what a strategy sees, plus
// the Sentry issue (group) it belongs to, which rootcause.Error does not hold.
type Event struct {
	rootcause.Error
	// IssueID is Sentry's groupID: the issue the event is grouped into.
	IssueID string
	// Project is the project slug, where known.
	Project string
	// Title is the event's title, as the issue list shows it.
	Title string
}
