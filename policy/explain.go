package policy

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cedar-policy/cedar-go/types"
)

// Explain decides req and says why, for people (`sios policy check`): the decision, the
// request as the policies saw it, each policy that forbade or permitted it with its @id,
// place and @description, and any policy that could not be evaluated. On a deny it also
// lists the permits that matched but were overridden, so the reader sees what a forbid
// took away. The decision is the one Decide returns.
func (e *Engine) Explain(req Request) string {
	d, permitted := e.decide(&req, true)
	var b strings.Builder
	switch {
	case d.Allow:
		fmt.Fprintf(&b, "decision: allow (permitted by %s)\n", strings.Join(d.Reasons, ", "))
	case len(d.Reasons) > 0:
		fmt.Fprintf(&b, "decision: deny (forbidden by %s)\n", strings.Join(d.Reasons, ", "))
	case d.Default:
		b.WriteString("decision: deny (by default: no permit matched)\n")
	default:
		b.WriteString("decision: deny (the request could not be judged)\n")
	}
	p, r, c := &req.Principal, &req.Resource, &req.Context
	fmt.Fprintf(&b, "request: principal %q (tenant %q, clearance %v, roles [%s]) %s %s %q",
		p.ID, p.Tenant, p.Clearance, strings.Join(p.Roles, ", "), req.Action, r.Type, r.ID)
	switch r.Type {
	case ResourceBrain:
		fmt.Fprintf(&b, " (classification %v, kind %q)", r.Classification, r.Kind)
	case ResourceMemory:
		fmt.Fprintf(&b, " (classification %v, tenant %q)", r.Classification, r.Tenant)
	case ResourcePeer:
		fmt.Fprintf(&b, " (accreditation %v, institution %q, attestation %q, same institution %s)",
			r.Classification, r.Institution, r.Attestation, yesNo(r.SameInstitution))
	case ResourceConsent:
		fmt.Fprintf(&b, " (maximum %v, tenant %q)", r.Classification, r.Tenant)
	}
	fmt.Fprintf(&b, "\ncontext: tenant %q, data %v flowing to %v, consent %s, tool allowed %s\n",
		c.Tenant, c.DataClassification, c.TargetAccreditation, yesNo(c.Consent || c.Grant != nil), yesNo(c.ToolAllowed))
	if c.Grant != nil {
		explainGrant(&b, c.Grant)
	}
	switch {
	case d.Allow:
		e.list(&b, "permitted by:", d.Reasons)
	case len(d.Reasons) > 0:
		e.list(&b, "forbidden by (a forbid overrides every permit):", d.Reasons)
		if len(permitted) > 0 {
			e.list(&b, "permits that matched but were overridden:", permitted)
		}
	case d.Default:
		b.WriteString("no permit matched and no forbid fired: requests are denied unless a permit allows them\n")
	}
	if len(d.Errors) > 0 {
		b.WriteString("errors (a forbid that cannot be evaluated counts as fired):\n")
		for _, msg := range d.Errors {
			fmt.Fprintf(&b, "  %s\n", msg)
		}
	}
	return b.String()
}

func (e *Engine) list(b *strings.Builder, title string, ids []string) {
	b.WriteString(title + "\n")
	for _, id := range ids {
		info := e.info[types.PolicyID(id)]
		fmt.Fprintf(b, "  %s (%s)\n", id, info.where())
		if info.description != "" {
			fmt.Fprintf(b, "    %s\n", info.description)
		}
	}
}

// explainGrant prints context.grant as policies see it, one attribute a line, in name
// order; classifications are shown by name beside their rank.
func explainGrant(b *strings.Builder, g map[string]any) {
	b.WriteString("context.grant (a verified consent grant covers the request):\n")
	for _, k := range slices.Sorted(maps.Keys(g)) {
		v := g[k]
		switch x := v.(type) {
		case int64:
			if (k == "max_classification" || k == "grantor_clearance") && Level(x).Valid() {
				fmt.Fprintf(b, "  %s: %d (%v)\n", k, x, Level(x))
				continue
			}
			if (k == "issued" || k == "expires") && x > 0 {
				fmt.Fprintf(b, "  %s: %d (%s)\n", k, x, time.Unix(x, 0).UTC().Format(time.RFC3339))
				continue
			}
		case string:
			fmt.Fprintf(b, "  %s: %q\n", k, x)
			continue
		case []string:
			q := make([]string, len(x))
			for i, s := range x {
				q[i] = strconv.Quote(s)
			}
			fmt.Fprintf(b, "  %s: [%s]\n", k, strings.Join(q, ", "))
			continue
		}
		fmt.Fprintf(b, "  %s: %v\n", k, v)
	}
}

func yesNo(v bool) string {
	if v {
		return "yes"
	}
	return "no"
}
