package consent

// CedarAttrs is the verified grant as policy sees it: the attributes of the record
// context.grant (docs/consent.md, "Cedar sees grants as data"). Values are plain Go
// types for the policy package to convert: string to a Cedar String, int64 to a Long,
// bool to a Boolean and []string to a Set of Strings. Classifications are Longs as
// everywhere in sios policy (OFFICIAL = 1 … TOP-SECRET = 4), times are Unix seconds,
// and members a grant leaves out are "" (audience_node, audience_principal, brain), an
// empty set (subjects) or 0 (uses: no count), so that every attribute is always present
// and a policy never fails on a missing one. The names are part of the policy language
// sios offers operators: only add to them.
//
// Call it only on a grant that verified (Verify, or at the origin Check and Store.Use):
// policy decides on what the grant says, not on whether it is genuine.
func (g *Grant) CedarAttrs() map[string]any {
	subjects := make([]string, len(g.Scope.Subjects))
	copy(subjects, g.Scope.Subjects)
	return map[string]any{
		"id":                 g.ID,
		"grantor":            g.Grantor.Principal,
		"tenant":             g.Grantor.Tenant,
		"grantor_clearance":  int64(g.Grantor.Clearance),
		"origin":             g.Origin.Node,
		"origin_institution": g.Origin.Institution,
		"audience":           g.Audience.Institution,
		"audience_node":      g.Audience.Node,
		"audience_principal": g.Audience.Principal,
		"action":             g.Scope.Action,
		"brain":              g.Scope.Brain,
		"subjects":           subjects,
		"max_classification": int64(g.Scope.Max),
		"purpose":            g.Purpose,
		"issued":             g.issued.Unix(),
		"expires":            g.expires.Unix(),
		"uses":               int64(g.Uses),
		"retain":             g.Retain,
	}
}
