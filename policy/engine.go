package policy

import (
	"fmt"
	"slices"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/ast"
)

// Engine decides requests against a loaded policy set. It is immutable once loaded (but
// for a memo that cannot change a decision) and safe for concurrent use.
type Engine struct {
	set     *cedar.PolicySet // every policy, keyed by @id
	permits *cedar.PolicySet // the permits alone, for Explain
	// byAction holds, for each action the node asks about, the policies whose action
	// scope can match it: all of them but those scoped "action == " another action,
	// which Cedar would find not to apply without evaluating anything else (no
	// decision, reason or error changes; TestPoliciesByActionDecideAlike).
	byAction map[types.EntityUID]*cedar.PolicySet
	info     map[types.PolicyID]policyInfo
	records  records // memo of request records; does not change decisions
	// decisions memoizes Decide by everything a decision reads (decisionKey): a
	// decision was ~4 % of a node's CPU per chat, and requests repeat.
	decisions memo[decisionKey, Decision]
	digest    string // of the policy files' names and text, as loaded
}

type policyInfo struct {
	effect      types.Effect
	pos         types.Position
	description string
}

func (i policyInfo) where() string {
	return fmt.Sprintf("%s:%d:%d", i.pos.Filename, i.pos.Line, i.pos.Column)
}

// Decide answers req. It never returns an allow it cannot justify by a permit: see
// Decision for how each field is filled.
func (e *Engine) Decide(req Request) Decision {
	k, ok := newDecisionKey(&req)
	if !ok {
		d, _ := e.decide(&req, false)
		return d
	}
	return e.decisions.get(k, func(decisionKey) Decision {
		d, _ := e.decide(&req, false)
		// Full slices: a caller appending to one gets a copy, not the memo's array.
		d.Reasons, d.Errors = slices.Clip(d.Reasons), slices.Clip(d.Errors)
		return d
	})
}

// decide evaluates req; with explain set it also returns the permits that matched,
// even when a forbid overrode them.
func (e *Engine) decide(req *Request, explain bool) (Decision, []string) {
	if err := req.check(); err != nil {
		return Decision{Errors: []string{"request refused: " + err.Error()}}, nil
	}
	ents := &entities{principal: e.records.principal(&req.Principal), resource: e.records.resource(&req.Resource)}
	action, _ := actionUID(req.Action) // checked by req.check
	cr := cedar.Request{
		Principal: ents.principal.UID,
		Action:    action,
		Resource:  ents.resource.UID,
		Context:   e.records.context(&req.Context),
	}
	set := e.set
	if s, ok := e.byAction[action]; ok {
		set = s
	}
	d := e.authorize(set, ents, cr)
	var permitted []string
	if explain {
		_, diag := cedar.Authorize(e.permits, ents, cr)
		permitted = reasonIDs(diag.Reasons)
	}
	return d, permitted
}

// authorize runs Cedar and turns its answer into a Decision. Cedar skips a policy whose
// evaluation fails; for a forbid that would let a permit through, so such a forbid
// counts as fired.
func (e *Engine) authorize(set *cedar.PolicySet, ents types.EntityGetter, cr cedar.Request) Decision {
	decision, diag := cedar.Authorize(set, ents, cr)
	ok := decision == cedar.Allow
	var d Decision
	var broken []string // forbids that failed to evaluate
	if len(diag.Errors) > 0 {
		d.Errors = make([]string, 0, len(diag.Errors))
		for _, de := range diag.Errors {
			info := e.info[de.PolicyID]
			d.Errors = append(d.Errors, fmt.Sprintf("%s (%s): %s", de.PolicyID, info.where(), de.Message))
			if info.effect == cedar.Forbid {
				broken = append(broken, string(de.PolicyID))
			}
		}
		slices.Sort(d.Errors)
	}
	switch {
	case len(broken) > 0 && ok:
		d.Reasons = broken
	case len(broken) > 0:
		d.Reasons = append(reasonIDs(diag.Reasons), broken...)
	case ok:
		d.Allow = true
		d.Reasons = reasonIDs(diag.Reasons)
	case len(diag.Reasons) > 0:
		d.Reasons = reasonIDs(diag.Reasons)
	default:
		d.Default = true
	}
	slices.Sort(d.Reasons)
	return d
}

func reasonIDs(rs []cedar.DiagnosticReason) []string {
	if len(rs) == 0 {
		return nil
	}
	ids := make([]string, len(rs))
	for i, r := range rs {
		ids[i] = string(r.PolicyID)
	}
	slices.Sort(ids)
	return ids
}

// Len returns the number of loaded policies.
func (e *Engine) Len() int { return len(e.info) }

// Digest is the hex SHA-256 of the policy files as loaded (each file's base name,
// length and text, in load order): what audit records name the policy set by.
func (e *Engine) Digest() string { return e.digest }

// IDs are the @id values of the loaded policies, sorted.
func (e *Engine) IDs() []string {
	ids := make([]string, 0, len(e.info))
	for id := range e.info {
		ids = append(ids, string(id))
	}
	slices.Sort(ids)
	return ids
}

// indexByAction fills e.byAction from e.set for every action of the node.
func (e *Engine) indexByAction() {
	e.byAction = map[types.EntityUID]*cedar.PolicySet{}
	var actions []types.EntityUID
	for _, uid := range actionUIDs {
		actions = append(actions, uid)
	}
	for _, a := range roleActions {
		uid, _ := actionUID(a)
		actions = append(actions, uid)
	}
	for _, a := range actions {
		set := cedar.NewPolicySet()
		for id, p := range e.set.All() {
			if eq, ok := p.AST().Action.(ast.ScopeTypeEq); ok && eq.Entity != a {
				continue
			}
			set.Add(id, p)
		}
		e.byAction[a] = set
	}
}
