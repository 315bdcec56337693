package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/sios-project/sios/admin"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// The principals page: the viewer's own principal and keys (names and dates, never a
// key), and the principals Cedar lets them administer (action admin on a
// Sios::Principal; the default policies give it to the role admin), with the changes
// they may make: disable, enable, rotate a key, remove, set clearance or roles. A
// change is made by the admin API's own function, which records it before the store
// changes; a revoked key fails at its next request, and a console session made with
// it ends at once.

func principalsPage() Page {
	return Page{Path: "/console/principals", Title: "Principals", Nav: true, Template: "principals.html", Data: principalsData,
		Actions: []Action{{Path: "/console/principals/change", Do: changePrincipal}}}
}

type principalRow struct {
	admin.PrincipalView
	Policies []string // the policies that let the viewer administer it
	Self     bool
}

type principalsView struct {
	Self    *admin.PrincipalView // nil for a user of an identity provider
	SelfKey string               // the key this session signed in with
	Via     string
	Rows    []principalRow
	Query   string
	After   string // the cursor of this page
	More    string // the cursor of the next page, if any
	Levels  []string
	Ops     []string
}

// mayAdminister asks Cedar whether the viewer may administer sp.
func (v *View) mayAdminister(sp *policy.StoredPrincipal) policy.Decision {
	lvl, err := policy.ParseLevel(sp.Clearance)
	if err != nil {
		lvl = policy.TopSecret // a principal whose clearance does not parse is treated as the highest
	}
	return v.c.cfg.Policy.Decide(policy.Request{
		Principal: v.P, Action: policy.ActionAdmin,
		Resource: policy.Resource{Type: policy.ResourcePrincipal, ID: sp.Tenant + "/" + sp.ID, Tenant: sp.Tenant, Classification: lvl},
		Context:  policy.Context{Tenant: v.P.Tenant, DataClassification: policy.Official, TargetAccreditation: v.P.Clearance},
	})
}

func principalsData(v *View) (any, error) {
	q, err := query(v.r, "q")
	if err != nil {
		return nil, err
	}
	after, err := query(v.r, "after")
	if err != nil {
		return nil, err
	}
	out := &principalsView{Query: q, After: after, Via: v.sess.describe(), Ops: []string{"disable", "enable", "rotate-key", "set", "remove"}}
	for _, l := range policy.Levels() {
		out.Levels = append(out.Levels, l.String())
	}
	for _, sp := range v.c.cfg.Principals.List() {
		self := sp.Tenant == v.P.Tenant && sp.ID == v.P.ID
		if self {
			pv := admin.ViewOf(sp)
			out.Self = &pv
			out.SelfKey = v.sess.keyName
		}
		key := sp.Tenant + "/" + sp.ID
		if (after != "" && key <= after) || (q != "" && !strings.Contains(key, q)) {
			continue
		}
		if len(out.Rows) == MaxPrincipalRows {
			out.More = out.Rows[len(out.Rows)-1].Tenant + "/" + out.Rows[len(out.Rows)-1].ID
			break
		}
		if d := v.mayAdminister(&sp); d.Allow {
			out.Rows = append(out.Rows, principalRow{PrincipalView: admin.ViewOf(sp), Policies: d.Reasons, Self: self})
		}
	}
	return out, nil
}

// changePrincipal makes one change to a principal the viewer may administer.
func changePrincipal(w http.ResponseWriter, v *View, f form) (*Result, error) {
	tenant, id, op := f.get("tenant"), f.get("id"), f.get("op")
	list := v.c.cfg.Principals.List()
	i := slices.IndexFunc(list, func(sp policy.StoredPrincipal) bool { return sp.Tenant == tenant && sp.ID == id })
	if i < 0 {
		return nil, errorf(http.StatusNotFound, "no principal %s in tenant %s", clip(id), clip(tenant))
	}
	sp := list[i]
	d := v.mayAdminister(&sp)
	if !d.Allow {
		why := "no policy permits it"
		if len(d.Reasons) > 0 {
			why = "forbidden by " + strings.Join(d.Reasons, ", ")
		}
		return nil, errorf(http.StatusForbidden, "%s may not administer %s/%s: %s", v.P.ID, sp.Tenant, sp.ID, why)
	}
	req := admin.ChangeRequest{Tenant: tenant, ID: id, Op: op, KeyName: f.get("key_name"), Clearance: f.get("clearance")}
	switch op {
	case "remove":
		if f.get("confirm") != "yes" {
			return nil, errorf(http.StatusBadRequest, "removing %s/%s needs the confirmation box ticked: its keys stop at once and it cannot be undone", tenant, id)
		}
	case "rotate-key":
		if e := f.get("expires"); e != "" {
			t, err := time.Parse(time.DateOnly, e)
			if err != nil {
				return nil, errorf(http.StatusBadRequest, "expires: %q is not a date (YYYY-MM-DD)", clip(e))
			}
			req.Expires = t
		}
	case "set":
		if roles := strings.TrimSpace(f.get("roles")); roles != "" {
			list := []string{}
			for _, r := range strings.Split(roles, ",") {
				if r = strings.TrimSpace(r); r != "" && r != "-" {
					list = append(list, r)
				}
			}
			req.Roles = &list
		}
	}
	res, err := admin.ChangePrincipalAs(context.WithoutCancel(v.r.Context()), v.c.cfg.Principals, v.c.cfg.Append,
		oar.Actor{ID: v.P.ID, Clearance: v.P.Clearance.String()}, &oar.Decision{Effect: "allow", Policies: d.Reasons}, req)
	if err != nil {
		if errors.Is(err, policy.ErrNoPrincipal) {
			return nil, errorf(http.StatusNotFound, "%v", err)
		}
		// The viewer administers this node: like the admin API's operator, they are
		// told why the store refused the change.
		return nil, errorf(http.StatusBadRequest, "the change was not made: %v", err)
	}
	out := &Result{Title: "Principal changed", Back: "/console/principals",
		Message: fmt.Sprintf("%s/%s: %s done and recorded.", tenant, id, op)}
	if res.Receipt != nil {
		idx := res.Receipt.Index
		out.Receipt = &idx
	}
	if res.APIKey != "" {
		out.Secret = res.APIKey
		out.Message = fmt.Sprintf("%s/%s: key %q issued and recorded (the key itself is not).", tenant, id, orDefault(req.KeyName, "default"))
	}
	return out, nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
