package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/sios-project/sios/invoke"
	"github.com/sios-project/sios/policy"
	"github.com/sios-project/sios/roles"
	"github.com/sios-project/sios/succession"
)

// RoleGateway is what the role endpoints need (docs/succession.md, "How a node runs
// it"): every act is governed by policy (role.* actions) and recorded by the node
// that signs it.
type RoleGateway interface {
	RoleList(ctx context.Context, p *policy.Principal) ([]succession.RoleState, error)
	RoleShow(ctx context.Context, p *policy.Principal, name string) (succession.RoleState, error)
	Role(ctx context.Context, p *policy.Principal, a invoke.RoleAct) (*roles.Outcome, error)
}

// RoleDefineRequest is POST /v1/roles: a role's charter, durations in seconds. Tenant
// defaults to the caller's.
type RoleDefineRequest struct {
	roles.Spec
}

// RoleReasonRequest is the body of refute and remove.
type RoleReasonRequest struct {
	Reason string `json:"reason"`
}

// RoleLetterRequest is POST /v1/roles/{name}/letter: the letter, base64.
type RoleLetterRequest struct {
	Letter []byte `json:"letter"`
}

// RoleLetter is an opened letter: base64, with the letter's hash.
type RoleLetter struct {
	Letter []byte `json:"letter"`
	Hash   string `json:"letter_hash"`
}

// roleStatuses are the HTTP statuses of the role outcomes.
var roleStatuses = map[invoke.Code]int{
	invoke.CodeUnknownRole: http.StatusNotFound,
	invoke.CodeRoleNotNow:  http.StatusConflict,
}

// roleError renders the role outcomes that statuses does not know.
func roleError(err error) error {
	var ie *invoke.Error
	if errors.As(err, &ie) {
		if status, ok := roleStatuses[ie.Code]; ok {
			return &Error{Status: status, Type: errorType(status), Code: string(ie.Code), Message: ie.Message, Receipt: ie.Receipt}
		}
	}
	return err
}

// roleName is the {name} of a role path, checked as succession checks role names.
func roleName(r *http.Request) (string, error) {
	name := r.PathValue("name")
	ok := name != "" && len(name) <= succession.MaxIDLen
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || i > 0 && (c == '.' || c == '_' || c == '@' || c == '-')
	}
	if !ok {
		return "", &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "invalid_role_name", Param: "name",
			Message: fmt.Sprintf("a role name is 1 to %d bytes of letters, digits, '.', '_', '@' or '-', starting with a letter or digit", succession.MaxIDLen)}
	}
	return name, nil
}

func (s *Server) roleRoutes(rg RoleGateway) {
	s.mux.HandleFunc("GET /v1/roles", s.authed(func(w http.ResponseWriter, r *http.Request, p *policy.Principal) error {
		list, err := rg.RoleList(r.Context(), p)
		if err != nil {
			return roleError(err)
		}
		writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": list})
		return nil
	}))
	s.mux.HandleFunc("GET /v1/roles/{name}", s.authed(func(w http.ResponseWriter, r *http.Request, p *policy.Principal) error {
		name, err := roleName(r)
		if err != nil {
			return err
		}
		st, err := rg.RoleShow(r.Context(), p, name)
		if err != nil {
			return roleError(err)
		}
		writeJSON(w, http.StatusOK, st)
		return nil
	}))
	act := func(w http.ResponseWriter, r *http.Request, p *policy.Principal, a invoke.RoleAct) error {
		out, err := rg.Role(r.Context(), p, a)
		if err != nil {
			return roleError(err)
		}
		if out.Receipt != nil {
			w.Header().Set(ReceiptHeader, EncodeReceipt(out.Receipt))
		}
		if a.Act == invoke.RoleActOpen {
			writeJSON(w, http.StatusOK, RoleLetter{Letter: out.Letter, Hash: out.Event})
			return nil
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
	s.mux.HandleFunc("POST /v1/roles", s.authed(func(w http.ResponseWriter, r *http.Request, p *policy.Principal) error {
		var req RoleDefineRequest
		if err := decodeBody(w, r, &req); err != nil {
			return err
		}
		return act(w, r, p, invoke.RoleAct{Act: invoke.RoleActDefine, Spec: &req.Spec})
	}))
	for _, a := range []string{invoke.RoleActCheckin, invoke.RoleActAccept, invoke.RoleActRefute, invoke.RoleActRemove} {
		s.mux.HandleFunc("POST /v1/roles/{name}/"+a, s.authed(func(w http.ResponseWriter, r *http.Request, p *policy.Principal) error {
			name, err := roleName(r)
			if err != nil {
				return err
			}
			var req RoleReasonRequest
			if a == invoke.RoleActRefute || a == invoke.RoleActRemove {
				if err := decodeBody(w, r, &req); err != nil {
					return err
				}
			}
			return act(w, r, p, invoke.RoleAct{Act: a, Name: name, Reason: req.Reason})
		}))
	}
	s.mux.HandleFunc("POST /v1/roles/{name}/letter", s.authed(func(w http.ResponseWriter, r *http.Request, p *policy.Principal) error {
		name, err := roleName(r)
		if err != nil {
			return err
		}
		var req RoleLetterRequest
		if err := decodeBody(w, r, &req); err != nil {
			return err
		}
		if len(req.Letter) == 0 || len(req.Letter) > succession.MaxLetterPlaintext {
			return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "invalid_letter", Param: "letter",
				Message: fmt.Sprintf("letter is %d bytes; it must be 1 to %d (MaxLetterPlaintext), base64 in the request", len(req.Letter), succession.MaxLetterPlaintext)}
		}
		return act(w, r, p, invoke.RoleAct{Act: invoke.RoleActDeposit, Name: name, Letter: req.Letter})
	}))
	s.mux.HandleFunc("POST /v1/roles/{name}/letter/open", s.authed(func(w http.ResponseWriter, r *http.Request, p *policy.Principal) error {
		name, err := roleName(r)
		if err != nil {
			return err
		}
		return act(w, r, p, invoke.RoleAct{Act: invoke.RoleActOpen, Name: name})
	}))
}
