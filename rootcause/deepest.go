package rootcause

// Deepest returns a strategy that follows the span links between the errors
// of a trace and picks the error deepest in the call chain.
//
// Error A is an ancestor of error B, a symptom of it, when B's parent chain,
// followed through the SpanID/ParentSpanID links known among errs, reaches
// A's span. An error on the trace's root span (ParentSpanID == "") is an
// ancestor of every error that is not, since the root span is every span's
// ancestor. Errors that share a span are not each other's ancestors.
//
// The candidates are the errors that are ancestors of no other error. Among
// them Deepest prefers the greatest known depth, the number of ancestor spans
// B's chain is known to pass through (the first span whose parent is unknown
// still counts: it is known to have one); then the earliest Timestamp (a zero
// one counts as latest); then the lowest index. Timestamps only break ties,
// so where the links are known the answer does not depend on the services'
// clocks.
//
// The chain only passes through spans on which some error was captured: a
// span without an error, such as the client span of an outgoing call, is a
// gap, and on either side of a gap Deepest falls back to depth and time.
// Where an error carries its Ancestors (sentryotel's SpanProcessor), its
// chain goes on to the nearest of them that carries an error, and there is
// no gap.
// Depths of errors in different branches are then not comparable, which is
// the weakness of preferring depth over time.
//
// Bad data cannot make it loop: a chain stops at a span it has already seen.
// An error whose span is its own ancestor (a cycle of links) is an ancestor
// of itself and is no candidate; when every error is, all of them are.
//
// RootCause takes O(n²) time in the number of errors n at worst, allocates
// nothing for up to 64 errors, and returns -1 for no errors.
func Deepest() Strategy { return deepest{} }

type deepest struct{}

// smallTrace is the number of errors up to which Deepest keeps its work area
// on the stack and finds spans by scanning errs rather than through a map.
const smallTrace = 64

// spanNode is Deepest's working state for errs[i], at the same index.
type spanNode struct {
	// key is idKey(SpanID): comparing keys first keeps the scans for
	// small traces cheap, since span ids differ mostly in their last bytes.
	key uint64
	// span is the lowest index of an error on the same span: the errors of
	// one span share that node's ancestor mark and parent link.
	span int32
	// parent is the span node of ParentSpanID, or -1 when no error is on it.
	parent int32
	// seen is the number of the last walk (index+1) that passed this node.
	seen int32
	// depth is the error's known depth.
	depth int32
	// ancestor is set on a span node when some error's chain reaches it.
	ancestor bool
}

// RootCause implements [Strategy].
func (deepest) RootCause(errs []Error) int {
	switch len(errs) {
	case 0:
		return -1
	case 1:
		return 0
	}
	var stack [smallTrace]spanNode
	var nodes []spanNode
	if len(errs) <= smallTrace {
		nodes = stack[:len(errs)]
	} else {
		nodes = make([]spanNode, len(errs))
	}
	linkSpans(errs, nodes)

	anyNonRoot := false
	for i := range errs {
		if !errs[i].IsRootSpan() {
			anyNonRoot = true
		}
		nodes[i].depth = walkAncestors(errs, nodes, i)
	}

	if best := deepestOf(errs, nodes, anyNonRoot, true); best >= 0 {
		return best
	}
	// Every error is its own ancestor: the links are a cycle and say nothing.
	return deepestOf(errs, nodes, anyNonRoot, false)
}

// Description returns "Deepest{tie:Earliest}".
func (deepest) Description() string { return "Deepest{tie:Earliest}" }

// linkSpans fills in the span and parent of each node.
func linkSpans(errs []Error, nodes []spanNode) {
	if len(errs) > smallTrace {
		linkSpansMap(errs, nodes)
		return
	}
	for i := range errs {
		id := errs[i].SpanID
		k := idKey(id)
		nodes[i] = spanNode{key: k, span: int32(i), parent: -1}
		if id == "" {
			continue
		}
		for j := range i {
			if nodes[j].key == k && nodes[j].span == int32(j) && errs[j].SpanID == id {
				nodes[i].span = int32(j)
				break
			}
		}
	}
	for i := range errs {
		for _, p := range parentChain(&errs[i]) {
			if j := findSpan(errs, nodes, p); j >= 0 {
				nodes[i].parent = int32(j)
				break
			}
		}
	}
}

// parentChain returns the spans that enclose e's span, nearest first: its
// parent, then the rest of its ancestors where they are known.
func parentChain(e *Error) []string {
	if len(e.Ancestors) > 0 && e.Ancestors[0] == e.ParentSpanID {
		return e.Ancestors
	}
	if e.ParentSpanID == "" {
		return nil
	}
	return []string{e.ParentSpanID}
}

// findSpan returns the index of the first error on span id, or -1.
func findSpan(errs []Error, nodes []spanNode, id string) int {
	k := idKey(id)
	for j := range errs {
		if nodes[j].key == k && nodes[j].span == int32(j) && errs[j].SpanID == id {
			return j
		}
	}
	return -1
}

// idKey packs the length and the last 8 bytes of id, which for hex span
// ids tell almost all of them apart, into a number that is cheap to compare.
func idKey(id string) uint64 {
	k := uint64(len(id))
	for i := max(0, len(id)-8); i < len(id); i++ {
		k = k<<8 | uint64(id[i])
	}
	return k
}

// linkSpansMap is linkSpans for large traces, in O(n) rather than O(n²).
func linkSpansMap(errs []Error, nodes []spanNode) {
	first := make(map[string]int32, len(errs))
	for i := range errs {
		nodes[i] = spanNode{span: int32(i), parent: -1}
		id := errs[i].SpanID
		if id == "" {
			continue
		}
		if j, ok := first[id]; ok {
			nodes[i].span = j
		} else {
			first[id] = int32(i)
		}
	}
	for i := range errs {
		for _, p := range parentChain(&errs[i]) {
			if j, ok := first[p]; ok {
				nodes[i].parent = j
				break
			}
		}
	}
}

// walkAncestors follows errs[i]'s parent chain, marks each span node it
// reaches as an ancestor, and returns the error's known depth. It visits each
// node at most once, so a cycle ends the walk.
func walkAncestors(errs []Error, nodes []spanNode, i int) int32 {
	walk := int32(i + 1)
	depth := int32(0)
	parentID, next := errs[i].ParentSpanID, nodes[i].parent
	for parentID != "" {
		if next < 0 {
			// The parent span is known to exist but carries no error.
			return depth + 1
		}
		n := &nodes[next]
		if n.seen == walk {
			return depth
		}
		n.seen = walk
		n.ancestor = true
		depth++
		// Follow the span's own link: that of the first error on it.
		parentID, next = errs[next].ParentSpanID, n.parent
	}
	return depth
}

// deepestOf returns the index of the deepest, then earliest, then first
// error, skipping ancestors if skipAncestors is set. It returns -1 when it
// skipped every error.
func deepestOf(errs []Error, nodes []spanNode, anyNonRoot, skipAncestors bool) int {
	best := -1
	for i := range errs {
		if skipAncestors && (nodes[nodes[i].span].ancestor || anyNonRoot && errs[i].IsRootSpan()) {
			continue
		}
		if best < 0 || nodes[i].depth > nodes[best].depth ||
			nodes[i].depth == nodes[best].depth && before(errs[i].Timestamp, errs[best].Timestamp) {
			best = i
		}
	}
	return best
}
