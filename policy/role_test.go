package policy

import (
	"strings"
	"testing"
)

// guardian is the facts of a role held by dr.okafor, with two successors and three admins.
func guardian() *RoleFacts {
	return &RoleFacts{State: "held", Holder: "dr.okafor", CharterHolder: "dr.okafor",
		Successors: []string{"dr.li", "dr.patel"}, Admins: []string{"admin.a", "admin.b", "admin.c"}}
}

func roleReq(who, tenant, action string, f *RoleFacts, roles ...string) Request {
	return Request{
		Principal: Principal{ID: who, Tenant: tenant, Clearance: Official, Roles: roles},
		Action:    action,
		Resource:  Resource{Type: ResourceRole, ID: "caldicott-guardian", Tenant: "nhs", RoleFacts: f},
		Context:   Context{Tenant: "nhs", DataClassification: Official, TargetAccreditation: Official},
	}
}

func roleMemory(who string, action string, roles ...string) Request {
	return Request{
		Principal: Principal{ID: who, Tenant: "nhs", Clearance: Secret, Roles: roles},
		Action:    action,
		Resource:  Resource{Type: ResourceMemory, ID: "role:caldicott-guardian", Classification: Official, Tenant: "nhs", Role: "caldicott-guardian"},
		Context:   Context{Tenant: "nhs", DataClassification: Official, TargetAccreditation: Official},
	}
}

func TestDefaultRolePolicies(t *testing.T) {
	e, err := Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	offered := guardian()
	offered.State, offered.Holder, offered.Offered = "handed-over", "", "dr.li"
	accepted := guardian()
	accepted.State, accepted.Holder = "handed-over", "dr.li"
	for _, c := range []decideCase{
		{name: "a tenant member reads roles", req: roleReq("nurse", "nhs", ActionRoleRead, guardian()),
			allow: true, reasons: []string{"permit-role-read"}},
		{name: "another tenant does not", req: roleReq("nurse", "other", ActionRoleRead, guardian()),
			reasons: []string{"forbid-cross-tenant"}},
		{name: "an admin defines", req: roleReq("admin.a", "nhs", ActionRoleDefine, &RoleFacts{}, "admin"),
			allow: true, reasons: []string{"permit-role-define"}},
		{name: "a member does not define", req: roleReq("nurse", "nhs", ActionRoleDefine, &RoleFacts{}), deflt: true},
		{name: "the holder checks in", req: roleReq("dr.okafor", "nhs", ActionRoleCheckin, guardian()),
			allow: true, reasons: []string{"permit-role-holder"}},
		{name: "the holder refutes", req: roleReq("dr.okafor", "nhs", ActionRoleRefute, guardian()),
			allow: true, reasons: []string{"permit-role-holder"}},
		{name: "the holder deposits a letter", req: roleReq("dr.okafor", "nhs", ActionRoleLetterDeposit, guardian()),
			allow: true, reasons: []string{"permit-role-holder"}},
		{name: "a successor does not refute", req: roleReq("dr.li", "nhs", ActionRoleRefute, guardian()), deflt: true},
		{name: "a namesake in another tenant does not", req: roleReq("dr.okafor", "other", ActionRoleCheckin, guardian()),
			reasons: []string{"forbid-cross-tenant"}},
		{name: "nobody accepts before an offer", req: roleReq("dr.li", "nhs", ActionRoleAccept, guardian()), deflt: true},
		{name: "the successor offered accepts", req: roleReq("dr.li", "nhs", ActionRoleAccept, offered),
			allow: true, reasons: []string{"permit-role-offered"}},
		{name: "the next successor does not, yet", req: roleReq("dr.patel", "nhs", ActionRoleAccept, offered), deflt: true},
		{name: "an admin removes", req: roleReq("admin.b", "nhs", ActionRoleRemove, guardian()),
			allow: true, reasons: []string{"permit-role-admins-remove"}},
		{name: "a tenant admin not in the charter does not", req: roleReq("admin.z", "nhs", ActionRoleRemove, guardian(), "admin"), deflt: true},
		{name: "the new holder opens the letter", req: roleReq("dr.li", "nhs", ActionRoleLetterOpen, accepted),
			allow: true, reasons: []string{"permit-role-letter-open"}},
		{name: "the former holder does not", req: roleReq("dr.okafor", "nhs", ActionRoleLetterOpen, accepted), deflt: true},
		{name: "nor the holder before a handover", req: roleReq("dr.okafor", "nhs", ActionRoleLetterOpen, guardian()), deflt: true},
		{name: "the role's holder reads its memory", req: roleMemory("dr.okafor", ActionMemoryRead, "clinician", "caldicott-guardian"),
			allow: true, reasons: []string{"permit-tenant-members"}},
		{name: "nobody else does", req: roleMemory("dr.li", ActionMemoryRead, "clinician"),
			reasons: []string{"forbid-role-memory-not-holder"}},
		{name: "nor writes it", req: roleMemory("dr.li", ActionMemoryWrite),
			reasons: []string{"forbid-role-memory-not-holder"}},
	} {
		t.Run(c.name, func(t *testing.T) { check(t, e, c) })
	}
}

func TestRoleRequestsRefusedWhenMalformed(t *testing.T) {
	e, err := Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]Request{
		"role without facts":     roleReq("dr.okafor", "nhs", ActionRoleCheckin, nil),
		"facts on a brain":       with(invoke(Secret, Secret), func(r *Request) { r.Resource.RoleFacts = guardian() }),
		"role on a brain":        with(invoke(Secret, Secret), func(r *Request) { r.Resource.Role = "guardian" }),
		"role without a tenant":  with(roleReq("dr.okafor", "nhs", ActionRoleCheckin, guardian()), func(r *Request) { r.Resource.Tenant = "" }),
		"unknown role action":    roleReq("dr.okafor", "nhs", "role.steal", guardian()),
		"role action on a brain": with(invoke(Secret, Secret), func(r *Request) { r.Action = ActionRoleRead }),
	} {
		d := e.Decide(r)
		if name == "role action on a brain" {
			if d.Allow {
				t.Errorf("%s: allowed", name)
			}
			continue
		}
		if d.Allow || len(d.Errors) == 0 || !strings.HasPrefix(d.Errors[0], "request refused") {
			t.Errorf("%s: Decide = %+v, want refused with an error", name, d)
		}
	}
}
