package consent

import (
	"errors"
	"fmt"
)

// Code says machine-readably why a grant was refused. The API and the fleet carry it
// to callers and peers as an error code, and audit records name it. Only append to this
// list: callers and peers branch on the codes.
type Code string

const (
	// CodeMalformed: the grant's bytes are not a consent-grant/1 grant (size, form,
	// canonical encoding, a member's rule).
	CodeMalformed Code = "consent_malformed"
	// CodeForged: the signatures do not verify with the origin node's keys, or the keys
	// or institution given are not those the grant names.
	CodeForged Code = "consent_forged"
	// CodeExpired: the grant's expiry has passed, or it is not valid yet.
	CodeExpired Code = "consent_expired"
	// CodeWrongAudience: the institution, node or principal using the grant is not the
	// one it was made for.
	CodeWrongAudience Code = "consent_wrong_audience"
	// CodeOutOfScope: the grant covers another action, brain or subject, another
	// tenant's data, or data from another node.
	CodeOutOfScope Code = "consent_out_of_scope"
	// CodeAboveMax: the data is classified above the grant's maximum.
	CodeAboveMax Code = "consent_above_max"
	// CodeRevoked: the grantor (or an operator) revoked the grant. Decided at the origin.
	CodeRevoked Code = "consent_revoked"
	// CodeUsedUp: every use the grant allows has been made. Decided at the origin.
	CodeUsedUp Code = "consent_used_up"
	// CodeUnknown: the origin holds no grant with that id (never made here, or its
	// store was lost): it cannot be used.
	CodeUnknown Code = "consent_unknown"
	// CodeRequired: a request needs a grant and none of the grantor's grants covers it.
	CodeRequired Code = "consent_required"
)

// Error is a refusal with its Code. Message is for the person who must act: it names
// the grant, the member and the values at fault, and never holds paths or key bytes.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

func errorf(code Code, format string, a ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, a...)}
}

// CodeOf is the Code of err, or "" when err is not (and wraps no) *Error.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
