// Package kafka carries the relay's decisions across machines: its Sink
// writes what the ingest stage accepts for deduplication to a topic keyed by
// trace id, and its Consumer feeds the partitions a relay owns, in order, to
// the relay that decides them, committing an offset only once everything
// before it was decided and handed upstream.
package kafka
