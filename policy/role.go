package policy

import (
	"fmt"

	"github.com/cedar-policy/cedar-go/types"
)

// Chartered roles (docs/succession.md): a role a charter defines passes from holder to
// successor by the fleet's records, not by the principal store. Policies see it three
// ways:
//
//   - principal.roles holds a chartered role's name exactly while the fleet's records
//     say the principal holds it (the caller overlays the principal's stored roles);
//   - a Memory filed under a role (subject "role:NAME") has the attribute role;
//   - the role actions act on a Sios::Role, whose attributes are the role's facts:
//     who holds it, who the charter names, to whom it is offered.

// Role actions, as named in policies (Sios::Action::"role.read", …).
const (
	ActionRoleRead          = "role.read"           // list and show a tenant's roles
	ActionRoleDefine        = "role.define"         // define (or redefine) a role's charter
	ActionRoleCheckin       = "role.checkin"        // the holder says they are present
	ActionRoleRefute        = "role.refute"         // the holder refuses a handover
	ActionRoleAccept        = "role.accept"         // a successor accepts the role offered to them
	ActionRoleRemove        = "role.remove"         // an admin removes the holder
	ActionRoleLetterDeposit = "role.letter-deposit" // the holder seals a letter for the successor
	ActionRoleLetterOpen    = "role.letter-open"    // the holder after a handover opens it
)

// ResourceRole is a chartered role (Sios::Role): its id is the role's name.
const ResourceRole = "Role"

// RoleFacts are what the fleet's records say of a role, for a Role resource. Ids are
// principal ids of the role's tenant; "" means none.
type RoleFacts struct {
	State         string   // held, suspected, pending, handed-over; "" for a role not yet defined
	Holder        string   // who holds it now: the charter's holder, or after a handover the successor who accepted
	CharterHolder string   // the holder the charter in force names
	Offered       string   // after a handover, the successor it is offered to now
	Successors    []string // in order
	Admins        []string // whose removals count
}

var roleActions = []string{ActionRoleRead, ActionRoleDefine, ActionRoleCheckin, ActionRoleRefute,
	ActionRoleAccept, ActionRoleRemove, ActionRoleLetterDeposit, ActionRoleLetterOpen}

// actionUID is the Cedar action of name, and whether it is one.
func actionUID(name string) (types.EntityUID, bool) {
	if uid, ok := actionUIDs[name]; ok {
		return uid, true
	}
	for _, a := range roleActions {
		if a == name {
			return types.NewEntityUID(typeAction, types.String(a)), true
		}
	}
	return types.EntityUID{}, false
}

// resourceType is the Cedar entity type of a resource type, and whether it is one.
func resourceType(name string) (types.EntityType, bool) {
	if name == ResourceRole {
		return "Sios::Role", true
	}
	t, ok := resourceTypes[name]
	return t, ok
}

// checkRole refuses a Role resource without facts, and role attributes where they mean
// nothing.
func checkRole(r *Resource) error {
	switch {
	case r.Type == ResourceRole && r.RoleFacts == nil:
		return fmt.Errorf("role %q has no facts", r.ID)
	case r.Type == ResourceRole && r.Tenant == "":
		return fmt.Errorf("role %q has no tenant", r.ID)
	case r.Type != ResourceRole && r.RoleFacts != nil:
		return fmt.Errorf("%s %q: role facts are for a Role", r.Type, r.ID)
	case r.Role != "" && r.Type != ResourceMemory:
		return fmt.Errorf("%s %q: only a Memory is filed under a role", r.Type, r.ID)
	}
	return nil
}

// roleAttrs builds the attributes of a Role resource, and adds role to a Memory filed
// under one. These records are built for each request (they vary with the fleet's
// records, so a cache would only hold stale ones); base is the cached record, if any.
func roleAttrs(r *Resource, base types.Record) types.Record {
	if r.Type == ResourceMemory {
		m := base.Map()
		m["role"] = types.String(r.Role)
		return types.NewRecord(m)
	}
	f := r.RoleFacts
	principal := func(id string) types.EntityUID { return types.NewEntityUID(typePrincipal, types.String(id)) }
	set := func(ids []string) types.Set {
		vs := make([]types.Value, len(ids))
		for i, id := range ids {
			vs[i] = principal(id)
		}
		return types.NewSet(vs...)
	}
	m := types.RecordMap{
		"tenant":     types.String(r.Tenant),
		"name":       types.String(r.ID),
		"state":      types.String(f.State),
		"successors": set(f.Successors),
		"admins":     set(f.Admins),
	}
	for name, id := range map[types.String]string{"holder": f.Holder, "charter_holder": f.CharterHolder, "offered": f.Offered} {
		if id != "" {
			m[name] = principal(id)
		}
	}
	return types.NewRecord(m)
}
