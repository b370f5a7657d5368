package ingest

// Rate-limit categories of Sentry's data (Relay's DataCategory names, as
// they appear in X-Sentry-Rate-Limits).
const (
	CategoryError       = "error"
	CategoryTransaction = "transaction"
	CategorySpan        = "span"
	CategoryAttachment  = "attachment"
	CategorySession     = "session"
	CategoryLog         = "log_item"
	CategoryMonitor     = "monitor"
	CategoryProfile     = "profile"
	CategoryReplay      = "replay"
	CategoryInternal    = "internal"
	CategoryUnknown     = "unknown"
)

// itemCategories maps an envelope item type to the category that Sentry
// counts and rate limits it under (relay-base-schema's data_category.rs,
// sentry-go's internal/ratelimit).
var itemCategories = map[string]string{
	"event":            CategoryError,
	"transaction":      CategoryTransaction,
	"span":             CategorySpan,
	"otel_span":        CategorySpan,
	"attachment":       CategoryAttachment,
	"session":          CategorySession,
	"sessions":         CategorySession,
	"log":              CategoryLog,
	"otel_log":         CategoryLog,
	"check_in":         CategoryMonitor,
	"profile":          CategoryProfile,
	"profile_chunk":    "profile_chunk",
	"replay_event":     CategoryReplay,
	"replay_recording": CategoryReplay,
	"replay_video":     CategoryReplay,
	"feedback":         "feedback",
	"user_report":      "user_report_v2",
	"client_report":    CategoryInternal,
	"statsd":           "metric_bucket",
	"metric_buckets":   "metric_bucket",
	"trace_metric":     "trace_metric",
	"security":         "security",
	"raw_security":     "security",
	"nel":              "security",
}

// Category returns the rate-limit category of an envelope item type,
// CategoryUnknown for a type it does not know (only a limit on every
// category applies to it).
func Category(itemType string) string {
	if c, ok := itemCategories[itemType]; ok {
		return c
	}
	return CategoryUnknown
}
