package sso

import "errors"

// The two outcomes of a refused bearer token. The API answers ErrInvalidToken with
// 401 and ErrUnmapped with 403; neither error's text holds any part of the token.
var (
	// ErrInvalidToken: the token was not issued by a configured issuer for this node
	// (unknown issuer, wrong audience, bad signature, disallowed algorithm, expired,
	// malformed, or no key to check it with yet).
	ErrInvalidToken = errors.New("invalid bearer token")
	// ErrUnmapped: the token is genuine but the operator's rules grant its user
	// nothing. Test with errors.Is; the error is an *UnmappedError.
	ErrUnmapped = errors.New("no access granted")
)

// UnmappedError says which user of which issuer was refused and why, for the audit
// record of the refused sign-in.
type UnmappedError struct {
	Issuer  string // the configured issuer name
	Subject string // the principal claim's value; empty if the token lacks it
	Reason  string // e.g. "no rule matched"
}

func (e *UnmappedError) Error() string {
	who := "a user"
	if e.Subject != "" {
		who = "user " + e.Subject
	}
	return "no access granted to " + who + " of issuer " + e.Issuer + ": " + e.Reason
}

// Is makes errors.Is(err, ErrUnmapped) hold.
func (e *UnmappedError) Is(target error) bool { return target == ErrUnmapped }
