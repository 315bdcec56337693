package admin

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/sios-project/sios/roles"
	"github.com/sios-project/sios/succession"
)

// The operator's channel to the node's chartered roles (docs/succession.md): what
// principals do through the API, the operator does here on a principal's behalf
// ("as"), recorded as the operator's act for that principal.

// RoleDefineRequest defines a role: the charter, durations in seconds; As is the
// author the charter names ("operator" when empty).
type RoleDefineRequest struct {
	roles.Spec
	As string `json:"as,omitempty"`
}

// RoleActRequest is an act on a role for a principal: checkin, refute, accept, remove,
// letter-deposit or letter-open.
type RoleActRequest struct {
	Tenant string `json:"tenant"`
	Name   string `json:"name"`
	Act    string `json:"act"`
	As     string `json:"as"`
	Reason string `json:"reason,omitempty"`
	Letter []byte `json:"letter,omitempty"`
}

// RoleActResponse is what the act did; Letter is set for letter-open alone.
type RoleActResponse struct {
	roles.Outcome
	Letter []byte `json:"letter,omitempty"`
}

// errNoRoles answers role requests on a node that keeps none.
var errNoRoles = errors.New("this node keeps no roles")

func (d Deps) roleRoutes() []route {
	return []route{
		{"GET /admin/roles", func(*http.Request) (any, error) {
			if d.Roles == nil {
				return []succession.RoleState{}, nil
			}
			return d.Roles.States(""), nil
		}},
		{"POST /admin/roles", func(r *http.Request) (any, error) {
			var req RoleDefineRequest
			if err := decode(r, &req); err != nil {
				return nil, err
			}
			if d.Roles == nil {
				return nil, errNoRoles
			}
			if req.As == "" {
				req.As = Operator.ID
			}
			out, err := d.Roles.Define(r.Context(), roles.By{Actor: Operator, Decision: OperatorAllow, Principal: req.As}, req.Spec)
			return out, roleErr(err)
		}},
		{"POST /admin/roles/act", func(r *http.Request) (any, error) {
			var req RoleActRequest
			if err := decode(r, &req); err != nil {
				return nil, err
			}
			if d.Roles == nil {
				return nil, errNoRoles
			}
			if req.As == "" {
				return nil, fmt.Errorf("%w: name the principal the act is for (as)", errBadRequest)
			}
			by := roles.By{Actor: Operator, Decision: OperatorAllow, Principal: req.As}
			k := d.Roles
			var out *roles.Outcome
			var err error
			switch req.Act {
			case "checkin":
				out, err = k.Checkin(r.Context(), by, req.Tenant, req.Name)
			case "refute":
				out, err = k.Refute(r.Context(), by, req.Tenant, req.Name, req.Reason)
			case "accept":
				out, err = k.Accept(r.Context(), by, req.Tenant, req.Name)
			case "remove":
				out, err = k.Remove(r.Context(), by, req.Tenant, req.Name, req.Reason)
			case "letter-deposit":
				out, err = k.Deposit(r.Context(), by, req.Tenant, req.Name, req.Letter)
			case "letter-open":
				out, err = k.OpenLetter(r.Context(), by, req.Tenant, req.Name)
			default:
				return nil, fmt.Errorf("%w: act %q is not checkin, refute, accept, remove, letter-deposit or letter-open", errBadRequest, req.Act)
			}
			if err != nil {
				return nil, roleErr(err)
			}
			return RoleActResponse{Outcome: *out, Letter: out.Letter}, nil
		}},
	}
}

// roleErr marks the acts the role's state refuses as conflicts (409), keeping their
// message.
func roleErr(err error) error {
	if errors.Is(err, roles.ErrNotNow) || errors.Is(err, roles.ErrUnknownRole) {
		return conflict{err}
	}
	return err
}

type conflict struct{ error }

func (c conflict) Is(target error) bool { return target == errConflict }
func (c conflict) Unwrap() error        { return c.error }
