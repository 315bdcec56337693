package invoke

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
	"github.com/sios-project/sios/roles"
	"github.com/sios-project/sios/succession"
)

// Chartered roles (package roles, docs/succession.md) in the pipeline:
//
//   - after authentication, the principal's roles are those the fleet's records say it
//     holds (roles.Keeper.Overlay), and its request counts as the charter holder's
//     presence (roles.Keeper.Active): every decision after that sees the role where it
//     is, on every node, with no restart;
//   - memories filed under a role (subject "role:NAME") carry the role to policy on the
//     one memory read path (readMemory, memoryDecision), so that only its holder reads
//     them;
//   - principals' acts on roles are decided by policy (role.* actions on a Sios::Role),
//     refused with a record, or done by the keeper, which records them first.

// RoleSubjectPrefix starts the subject of every memory filed under a role.
const RoleSubjectPrefix = "role:"

// Outcomes of role requests. Only append.
const (
	CodeUnknownRole Code = "unknown_role" // no charter is in force for the role
	CodeRoleNotNow  Code = "role_not_now" // the charter and the role's state do not allow the act
)

// SetRoles gives the pipeline the node's role keeper; call it before serving.
func (p *Pipeline) SetRoles(k *roles.Keeper) { p.cfg.Roles = k }

// withRoles is an authenticated principal as policy sees it: with the chartered roles
// of its tenant as the fleet's records say. Its request counts as presence.
func (p *Pipeline) withRoles(pr *policy.Principal) *policy.Principal {
	k := p.cfg.Roles
	if k == nil || pr == nil {
		return pr
	}
	k.Active(pr)
	return k.Overlay(pr)
}

// roleOfSubject is the role a memory subject is filed under, or "".
func roleOfSubject(subject string) string {
	name, _ := strings.CutPrefix(subject, RoleSubjectPrefix)
	if name == subject {
		return ""
	}
	return name
}

// hideRoleMemories is the memory.Query filter of a search across subjects: it leaves
// out the subjects filed under a role that policy does not let pr read at lvl (each
// asked once per search).
func (p *Pipeline) hideRoleMemories(pr *policy.Principal, lvl policy.Level) func(subject string) bool {
	asked := map[string]bool{}
	return func(subject string) bool {
		if roleOfSubject(subject) == "" {
			return false
		}
		hide, ok := asked[subject]
		if !ok {
			hide = !p.memoryDecision(pr, policy.ActionMemoryRead, subject, lvl).Allow
			asked[subject] = hide
		}
		return hide
	}
}

// roleDecision asks policy whether pr may do action (a policy.ActionRole… action) on
// the role name of tenant, as it stands now.
func (p *Pipeline) roleDecision(pr *policy.Principal, action, tenant, name string) policy.Decision {
	facts := policy.RoleFacts{}
	if p.cfg.Roles != nil {
		facts = p.cfg.Roles.Facts(tenant, name)
	}
	return p.cfg.Policy.Decide(policy.Request{
		Principal: *pr, Action: action,
		Resource: policy.Resource{Type: policy.ResourceRole, ID: name, Tenant: tenant, RoleFacts: &facts},
		Context:  policy.Context{Tenant: tenant, DataClassification: policy.Official, TargetAccreditation: policy.Official},
	})
}

// RoleList returns the roles of pr's tenant that policy lets pr read.
func (p *Pipeline) RoleList(ctx context.Context, pr *policy.Principal) ([]succession.RoleState, error) {
	out := []succession.RoleState{}
	if p.cfg.Roles == nil {
		return out, nil
	}
	for _, st := range p.cfg.Roles.States(pr.Tenant) {
		if p.roleDecision(pr, policy.ActionRoleRead, st.Tenant, st.Name).Allow {
			out = append(out, st)
		}
	}
	return out, nil
}

// RoleShow returns one role of pr's tenant; one policy does not let pr read answers as
// one that does not exist.
func (p *Pipeline) RoleShow(ctx context.Context, pr *policy.Principal, name string) (succession.RoleState, error) {
	if p.cfg.Roles != nil {
		if st, ok := p.cfg.Roles.State(pr.Tenant, name); ok && p.roleDecision(pr, policy.ActionRoleRead, pr.Tenant, name).Allow {
			return st, nil
		}
	}
	return succession.RoleState{}, errorf(CodeUnknownRole, "tenant %s has no role %q that you may see", pr.Tenant, name)
}

// RoleAct is what a principal asks of a role.
type RoleAct struct {
	Name   string
	Act    string      // one of the RoleAct… constants
	Reason string      // refute, remove
	Letter []byte      // letter-deposit
	Spec   *roles.Spec // define (Tenant defaults to the principal's)
}

// Role acts, as the API names them. Only append.
const (
	RoleActDefine  = "define"
	RoleActCheckin = "checkin"
	RoleActRefute  = "refute"
	RoleActAccept  = "accept"
	RoleActRemove  = "remove"
	RoleActDeposit = "letter-deposit"
	RoleActOpen    = "letter-open"
)

// roleActs maps each act to its policy action and audit action.
var roleActs = map[string]struct{ policy, audit string }{
	RoleActDefine:  {policy.ActionRoleDefine, oar.ActionRoleDefine},
	RoleActCheckin: {policy.ActionRoleCheckin, oar.ActionRoleCheckin},
	RoleActRefute:  {policy.ActionRoleRefute, oar.ActionRoleRefute},
	RoleActAccept:  {policy.ActionRoleAccept, oar.ActionRoleAccept},
	RoleActRemove:  {policy.ActionRoleRemove, oar.ActionRoleRemove},
	RoleActDeposit: {policy.ActionRoleLetterDeposit, oar.ActionRoleLetterDeposit},
	RoleActOpen:    {policy.ActionRoleLetterOpen, oar.ActionRoleLetterOpen},
}

// Role does what a principal asks of a role in its tenant: the perimeter's rate limit,
// then policy, then the keeper, which checks the charter's own rules, records the act
// and publishes it. A refusal at any of these is recorded.
func (p *Pipeline) Role(ctx context.Context, pr *policy.Principal, a RoleAct) (*roles.Outcome, error) {
	acts, ok := roleActs[a.Act]
	if !ok {
		return nil, errorf(CodeInvalidRequest, "%q is not a role act", a.Act)
	}
	if p.cfg.Roles == nil {
		return nil, errorf(CodeUnknownRole, "this node keeps no roles")
	}
	tenant := pr.Tenant
	if a.Spec != nil {
		if a.Spec.Tenant == "" {
			a.Spec.Tenant = pr.Tenant
		}
		tenant, a.Name = a.Spec.Tenant, a.Spec.Name
	}
	refuse := func(decision *oar.Decision, e *Error) error {
		rc, err := p.appendNow(ctx, &oar.Record{Tenant: tenant, Actor: actorOf(pr), Action: acts.audit,
			Resource: "role/" + tenant + "/" + a.Name, Decision: decision,
			Detail: mustJSON(map[string]string{"reason": oar.Bounded(e.Message, oar.MaxOutsideValue)})})
		if err != nil {
			p.cfg.Log.Error("audit role refusal", "err", err)
			return errAudit()
		}
		e.Receipt = rc
		return e
	}
	if ok, wait := p.limits.Take("principal/"+pr.Tenant+"/"+pr.ID, p.cfg.PrincipalPerMinute, p.cfg.PrincipalBurst); !ok {
		return nil, refuse(&oar.Decision{Effect: "deny", Policies: []string{"rate-limit-principal"}},
			&Error{Code: CodeRateLimited, RetryAfter: wait,
				Message: fmt.Sprintf("principal %s is over its rate limit; retry after %s", pr.ID, wait.Round(time.Millisecond))})
	}
	d := p.roleDecision(pr, acts.policy, tenant, a.Name)
	if !d.Allow {
		return nil, refuse(decisionOf(d), errorf(CodePolicyDenied, "principal %s may not %s role %s: %s", pr.ID, a.Act, a.Name, denialReason(d)))
	}
	by := roles.By{Actor: actorOf(pr), Decision: decisionOf(d), Principal: pr.ID}
	k := p.cfg.Roles
	var out *roles.Outcome
	var err error
	switch a.Act {
	case RoleActDefine:
		out, err = k.Define(ctx, by, *a.Spec)
	case RoleActCheckin:
		out, err = k.Checkin(ctx, by, tenant, a.Name)
	case RoleActRefute:
		out, err = k.Refute(ctx, by, tenant, a.Name, a.Reason)
	case RoleActAccept:
		out, err = k.Accept(ctx, by, tenant, a.Name)
	case RoleActRemove:
		out, err = k.Remove(ctx, by, tenant, a.Name, a.Reason)
	case RoleActDeposit:
		out, err = k.Deposit(ctx, by, tenant, a.Name, a.Letter)
	case RoleActOpen:
		out, err = k.OpenLetter(ctx, by, tenant, a.Name)
	}
	switch {
	case err == nil:
		return out, nil
	case errors.Is(err, roles.ErrUnknownRole):
		return nil, refuse(&oar.Decision{Effect: "deny", Policies: []string{"succession"}}, errorf(CodeUnknownRole, "%s", err.Error()))
	case errors.Is(err, roles.ErrNotNow):
		return nil, refuse(&oar.Decision{Effect: "deny", Policies: []string{"succession"}}, errorf(CodeRoleNotNow, "%s", err.Error()))
	case errors.Is(err, roles.ErrInvalid):
		return nil, errorf(CodeInvalidRequest, "%s", err.Error())
	case errors.Is(err, roles.ErrUnrecorded):
		return nil, errAudit()
	}
	p.cfg.Log.Error("role act", "act", a.Act, "role", a.Name, "err", err)
	return nil, errorf(CodeInternal, "the node could not complete the act; see its log")
}
