package dedup

// EventBytes is eventBytes, for the tests of its accuracy.
var EventBytes = eventBytes
