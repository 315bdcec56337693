package console

import (
	"context"
	"fmt"
	"net/http"

	"github.com/sios-project/sios/invoke"
	"github.com/sios-project/sios/succession"
)

// The roles page: the chartered roles of the viewer's tenant that policy lets them
// see (role.read on a Sios::Role), as GET /v1/roles and 'sios role list' show them, and
// one role as GET /v1/roles/NAME and 'sios role show' do — the same functions. The
// charter's holder may check in, and the successor a role is offered to may accept
// it, through the function behind POST /v1/roles/NAME/checkin and …/accept: decided by
// policy, checked against the charter, recorded (a refusal too) before it counts.

func rolesPage() Page {
	return Page{Path: "/console/roles", Title: "Roles", Nav: true, Template: "roles.html", Data: rolesData,
		Visible: func(v *View) bool { return v.c.cfg.Roles != nil },
		Actions: []Action{
			{Path: "/console/roles/checkin", Do: roleAct(invoke.RoleActCheckin)},
			{Path: "/console/roles/accept", Do: roleAct(invoke.RoleActAccept)},
		}}
}

func rolePage() Page {
	return Page{Path: "/console/roles/{name}", Title: "Role", Template: "role.html", Data: roleData,
		Visible: func(v *View) bool { return v.c.cfg.Roles != nil }}
}

type rolesView struct {
	Tenant string
	Roles  []roleView
}

// roleView is a role's state, with the acts the viewer is offered.
type roleView struct {
	succession.RoleState
	MayCheckin bool // the viewer is the holder the charter names, before a handover
	MayAccept  bool // the role is offered to the viewer
}

func (v *View) roleView(st succession.RoleState) roleView {
	return roleView{RoleState: st,
		MayCheckin: st.State != succession.StateHandedOver && st.Holder == v.P.ID,
		MayAccept:  st.State == succession.StateHandedOver && st.Holder == "" && st.Offer != nil && st.Offer.Successor == v.P.ID}
}

func rolesData(v *View) (any, error) {
	list, err := v.c.cfg.Roles.RoleList(v.r.Context(), &v.P)
	if err != nil {
		return nil, outcome(err)
	}
	out := &rolesView{Tenant: v.P.Tenant}
	for _, st := range list {
		out.Roles = append(out.Roles, v.roleView(st))
	}
	return out, nil
}

func roleData(v *View) (any, error) {
	st, err := v.showRole(v.r.PathValue("name"))
	if err != nil {
		return nil, err
	}
	rv := v.roleView(st)
	return &rv, nil
}

// showRole is one role the viewer may see, or the answer for one that does not exist.
func (v *View) showRole(name string) (succession.RoleState, error) {
	if name == "" || len(name) > succession.MaxIDLen {
		return succession.RoleState{}, errorf(http.StatusNotFound, "tenant %s has no role %q that you may see", v.P.Tenant, clip(name))
	}
	st, err := v.c.cfg.Roles.RoleShow(v.r.Context(), &v.P, name)
	return st, outcome(err)
}

// roleAct is the action doing one act on the role the form names.
func roleAct(act string) func(w http.ResponseWriter, v *View, f form) (*Result, error) {
	return func(w http.ResponseWriter, v *View, f form) (*Result, error) {
		name := f.get("name")
		if name == "" || len(name) > succession.MaxIDLen {
			return nil, errorf(http.StatusBadRequest, "the form names no role")
		}
		out, err := v.c.cfg.Roles.Role(context.WithoutCancel(v.r.Context()), &v.P, invoke.RoleAct{Act: act, Name: name})
		if err != nil {
			return nil, outcome(err)
		}
		st := out.State
		res := &Result{Title: "Role " + name, Back: "/console/roles/" + name}
		switch {
		case act == invoke.RoleActCheckin && !out.Published:
			res.Message = fmt.Sprintf("Checked in to role %s: recorded; the fleet already knew you are present, so no presence was due.", name)
		case act == invoke.RoleActCheckin:
			res.Message = fmt.Sprintf("Checked in to role %s: your presence is recorded and published to the institution's nodes.", name)
		default:
			res.Message = fmt.Sprintf("You accepted role %s: recorded and published; it is %s, held by %s.", name, st.State, st.Holder)
		}
		if out.Receipt != nil {
			idx := out.Receipt.Index
			res.Receipt = &idx
		}
		return res, nil
	}
}
