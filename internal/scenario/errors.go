package scenario

import "fmt"

// Error types: sentry-go names an event's exception by its Go type, and the
// deduplicator treats one service's errors of one type as repeats.
type (
	PaymentDeclined struct{}
	RefundFailed    struct{}
	StockError      struct{}
	PriceError      struct{}
	CallFailed      struct{ Status int }
	AuditLost       struct{}
)

func (*PaymentDeclined) Error() string { return "card declined" }
func (*RefundFailed) Error() string    { return "refund failed" }
func (*StockError) Error() string      { return "out of stock" }
func (*PriceError) Error() string      { return "no price" }
func (e *CallFailed) Error() string    { return fmt.Sprintf("downstream answered %d", e.Status) }
func (*AuditLost) Error() string       { return "audit record lost" }

// TypePrefix is what sentry-go puts before the name of this package's error
// types in an exception's type ("*scenario.CallFailed").
const TypePrefix = "*scenario."
