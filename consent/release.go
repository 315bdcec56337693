package consent

import (
	"fmt"
	"slices"

	"github.com/sios-project/sios/policy"
)

// Clearance descent: when a person who works in two places draws, at one, on what the
// other holds about her work, the holding node releases nothing above the lowest of four
// ceilings, each set by a different party:
//
//   - the grant's maximum (what the grantor agreed to);
//   - the grantor's clearance at the holding node now (a grantor cannot release more
//     than she may read there; a clearance lowered since the grant lowers the release);
//   - the requester's clearance at her own node (what she may read where she works);
//   - the receiving node's accreditation (what that node may hold at all).

// ReleaseMax is the highest classification that may be released under g: the minimum
// of g's maximum, grantorClearance (the grantor's clearance at the holding node now),
// requesterClearance (the requester's clearance at her own node, as her node vouches
// for it) and receiverAccreditation (the receiving node's posture). An argument that is
// not a classification is an error: nothing may be released on a ceiling nobody set.
func ReleaseMax(g *Grant, grantorClearance, requesterClearance, receiverAccreditation policy.Level) (policy.Level, error) {
	for _, c := range []struct {
		name string
		l    policy.Level
	}{
		{"the grant's max_classification", g.Scope.Max},
		{"the grantor's clearance", grantorClearance},
		{"the requester's clearance", requesterClearance},
		{"the receiving node's accreditation", receiverAccreditation},
	} {
		if !c.l.Valid() {
			return 0, fmt.Errorf("consent: release under grant %s: %s is not a classification", g.ID, c.name)
		}
	}
	return min(g.Scope.Max, grantorClearance, requesterClearance, receiverAccreditation), nil
}

// Item is what the release rule looks at in a memory.
type Item struct {
	Tenant         string
	Subject        string
	Classification policy.Level
}

// Releasable returns the memories of ms, in their order, that may be released under g
// at ceiling (from ReleaseMax): those of the grantor's tenant, about one of the grant's
// subjects, classified at or below both ceiling and the grant's maximum. item says what
// each memory is. A grant that is not for ActionMemoryRead releases nothing.
func Releasable[M any](g *Grant, ceiling policy.Level, ms []M, item func(M) Item) []M {
	var out []M
	if g.Scope.Action != ActionMemoryRead || !ceiling.Valid() {
		return out
	}
	top := min(ceiling, g.Scope.Max)
	for _, m := range ms {
		it := item(m)
		if it.Tenant != g.Grantor.Tenant || !it.Classification.Valid() || it.Classification > top {
			continue
		}
		if _, found := slices.BinarySearch(g.Scope.Subjects, it.Subject); !found {
			continue
		}
		out = append(out, m)
	}
	return out
}
