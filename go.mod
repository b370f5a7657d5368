module github.com/tracedup/tracedup

go 1.26.0

require github.com/getsentry/sentry-go v0.46.2

require (
	github.com/google/go-cmp v0.7.0 // indirect
	github.com/stretchr/testify v1.12.1 // indirect
	golang.org/x/sys v0.48.0 // indirect
	golang.org/x/text v0.14.0 // indirect
)
