package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// The principal lifecycle: list, change (remove, disable, enable, rotate a key, set the
// clearance or roles). Every change is recorded first: the store changes only if its
// record is durable. A revoked or rotated key fails on the node's next request.

// PrincipalView is a principal as the operator sees it: never a key, only key names.
type PrincipalView struct {
	Tenant    string    `json:"tenant"`
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	Clearance string    `json:"clearance"`
	Roles     []string  `json:"roles,omitempty"`
	Disabled  bool      `json:"disabled,omitempty"`
	Keys      []KeyView `json:"keys"`
	Created   string    `json:"created"`
}

// KeyView is one key's name and dates.
type KeyView struct {
	Name    string `json:"name"`
	Created string `json:"created"`
	Expires string `json:"expires,omitempty"`
}

// PrincipalViews lists every principal as the operator sees it.
func (d Deps) PrincipalViews() []PrincipalView {
	out := []PrincipalView{}
	for _, sp := range d.Principals.List() {
		out = append(out, ViewOf(sp))
	}
	return out
}

// ViewOf is the operator's view of a stored principal.
func ViewOf(sp policy.StoredPrincipal) PrincipalView {
	v := PrincipalView{Tenant: sp.Tenant, ID: sp.ID, Kind: sp.Kind, Clearance: sp.Clearance, Roles: sp.Roles,
		Disabled: sp.Disabled, Created: sp.Created, Keys: []KeyView{}}
	for _, k := range sp.Keys {
		v.Keys = append(v.Keys, KeyView{Name: k.Name, Created: k.Created, Expires: k.Expires})
	}
	return v
}

// ChangeRequest is the admin API's body for changing a principal.
type ChangeRequest struct {
	Tenant    string    `json:"tenant"`
	ID        string    `json:"id"`
	Op        string    `json:"op"` // remove, disable, enable, rotate-key, set
	KeyName   string    `json:"key_name,omitempty"`
	Expires   time.Time `json:"expires,omitzero"`
	Clearance string    `json:"clearance,omitempty"`
	Roles     *[]string `json:"roles,omitempty"`
}

// ChangeResponse is the principal after the change, with a new key (shown once).
type ChangeResponse struct {
	Principal PrincipalView `json:"principal"`
	APIKey    string        `json:"api_key,omitempty"`
	Receipt   *oar.Receipt  `json:"receipt,omitempty"`
}

// ops maps an operation to its audit action and store change.
func (r ChangeRequest) change() (string, policy.Change, error) {
	yes, no := true, false
	switch r.Op {
	case "remove":
		return oar.ActionPrincipalRemove, policy.Change{Remove: true}, nil
	case "disable":
		return oar.ActionPrincipalDisable, policy.Change{Disable: &yes}, nil
	case "enable":
		return oar.ActionPrincipalEnable, policy.Change{Disable: &no}, nil
	case "rotate-key":
		name := r.KeyName
		if name == "" {
			name = "default"
		}
		return oar.ActionPrincipalRotateKey, policy.Change{RotateKey: name, Expires: r.Expires}, nil
	case "set":
		if r.Clearance == "" && r.Roles == nil {
			return "", policy.Change{}, fmt.Errorf("%w: set needs a clearance or roles", errBadRequest)
		}
		return oar.ActionPrincipalSet, policy.Change{Clearance: r.Clearance, Roles: r.Roles}, nil
	}
	return "", policy.Change{}, fmt.Errorf("%w: op %q is not remove, disable, enable, rotate-key or set", errBadRequest, r.Op)
}

// ChangePrincipal applies a change and records it first (never the key): through the
// running node's admin API, or by the CLI on a data directory no node holds.
func ChangePrincipal(ctx context.Context, ps *policy.Principals, appendFn func(context.Context, *oar.Record) (*oar.Receipt, []byte, error),
	actor string, req ChangeRequest) (*ChangeResponse, error) {
	return ChangePrincipalAs(ctx, ps, appendFn, oar.Actor{ID: actor}, OperatorAllow, req)
}

// ChangePrincipalAs is ChangePrincipal made by actor under decision (the policies that
// allowed it): the console's changes, which a signed-in principal makes under Cedar.
func ChangePrincipalAs(ctx context.Context, ps *policy.Principals, appendFn func(context.Context, *oar.Record) (*oar.Receipt, []byte, error),
	actor oar.Actor, decision *oar.Decision, req ChangeRequest) (*ChangeResponse, error) {
	action, c, err := req.change()
	if err != nil {
		return nil, err
	}
	var rc *oar.Receipt
	sp, key, err := ps.ChangeRecorded(req.Tenant, req.ID, c, time.Now(), func(sp *policy.StoredPrincipal) error {
		detail := map[string]any{"clearance": sp.Clearance, "roles": sp.Roles, "disabled": sp.Disabled}
		if c.RotateKey != "" {
			detail["key"] = c.RotateKey
			if !c.Expires.IsZero() {
				detail["expires"] = c.Expires.UTC().Format(time.RFC3339)
			}
		}
		b, _ := json.Marshal(detail)
		var err error
		rc, _, err = appendFn(ctx, &oar.Record{
			Tenant: sp.Tenant, Actor: actor, Action: action,
			Resource: "principal/" + sp.Tenant + "/" + sp.ID, Decision: decision,
			Detail: b,
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	return &ChangeResponse{Principal: ViewOf(*sp), APIKey: key, Receipt: rc}, nil
}

func (d Deps) principalRoutes() []route {
	return []route{
		{"GET /admin/principals", func(*http.Request) (any, error) { return d.PrincipalViews(), nil }},
		{"POST /admin/principals/change", func(r *http.Request) (any, error) {
			var req ChangeRequest
			if err := decode(r, &req); err != nil {
				return nil, err
			}
			return ChangePrincipal(r.Context(), d.Principals, d.Ledger.Append, "operator", req)
		}},
	}
}
