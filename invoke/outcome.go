package invoke

import (
	"errors"
	"fmt"
	"time"

	"github.com/sios-project/sios/consent"
	"github.com/sios-project/sios/oar"
)

// Code says what became of a request that was not served, machine-readably. The API
// maps each code to an HTTP status and OpenAI's error type (api.StatusOf); peers
// receive the code in their signed reply. Only append to this list: callers and peers
// branch on the codes.
type Code string

const (
	// The request itself.
	CodeInvalidRequest        Code = "invalid_request"        // a member is malformed
	CodeInvalidClassification Code = "invalid_classification" // X-Sios-Classification is not a marking
	CodeInvalidMemory         Code = "invalid_memory"         // a memory request is malformed
	CodeModelNotFound         Code = "model_not_found"        // no such brain, here or at a peer
	CodePanelNotFound         Code = "panel_not_found"        // no such panel in DIR/panels
	CodeDecisionNotFound      Code = "decision_not_found"     // no decision with that id the caller may read
	CodeUnknownSubject        Code = "unknown_subject"        // no memories are held about the subject
	CodeUnknownRecord         Code = "unknown_record"         // no audit record the caller may read at that index
	CodeParameterNotAllowed   Code = "parameter_not_allowed"  // the brain does not let callers set a member
	CodeUnsupportedContent    Code = "unsupported_content"    // an image to a brain that takes none

	// Governance and the perimeter.
	CodePolicyDenied    Code = "policy_denied"       // policy forbids it, or no policy permits it
	CodeRateLimited     Code = "rate_limit_exceeded" // a principal's or brain's rate limit
	CodePeerRateLimited Code = "peer_rate_limited"   // the rate of calls this node serves for peers
	CodeEgressRefused   Code = "egress_refused"      // the backend is not on the egress allowlist
	CodeTimeBudget      Code = "time_budget_exceeded"
	CodeAuditFailed     Code = "audit_unavailable" // the record could not be written: nothing was served

	// Backends.
	CodeBackendMisconfigured Code = "backend_misconfigured"
	CodeNoModel              Code = "no_model"
	CodeBackendError         Code = "backend_error"           // the model server answered with an error
	CodeBackendUnavailable   Code = "backend_unavailable"     // the model server could not be reached
	CodeBackendModelNotFound Code = "backend_model_not_found" // the model server does not have the brain's model
	CodeBackendNoTools       Code = "backend_no_tools"        // the model takes no tools, and the caller's tools need them
	CodeBackendClosed        Code = "backend_closed"          // the model server's answer broke off
	CodeClientClosed         Code = "client_closed"           // the caller went away before the answer was done

	// Peers.
	CodeRemoteUnavailable  Code = "remote_unavailable"   // no reachable peer offers the brain
	CodeRemoteUnreachable  Code = "remote_unreachable"   // the chosen peer could not be reached
	CodeRemoteTimeout      Code = "remote_timeout"       // the peer did not answer in time
	CodeRemoteInvalidReply Code = "remote_invalid_reply" // the peer's answer does not verify
	CodeRemoteError        Code = "remote_error"         // the peer failed without a code

	// Refusals of a peer's call (fleet API).
	CodePeerUntrusted   Code = "peer_untrusted"
	CodeMalformedCall   Code = "malformed_call"
	CodeInvalidEnvelope Code = "invalid_envelope"
	CodeEnvelopeForged  Code = "envelope_forged"
	CodePayloadMismatch Code = "payload_mismatch"
	CodeInvalidPayload  Code = "invalid_payload"
	CodeOriginForked    Code = "origin_forked"
	CodeEnvelopeRefused Code = "envelope_refused"

	// Authentication.
	CodeInvalidKey       Code = "invalid_api_key"   // no principal holds the key
	CodeInvalidToken     Code = "invalid_token"     // not a token of a configured identity provider
	CodeUnmappedIdentity Code = "unmapped_identity" // a genuine user the operator's rules grant nothing
	// Consent grants (docs/consent.md): the refusal codes of package consent, spelt
	// the same (a test keeps them so), so that a caller, a peer and an audit record
	// name a refusal alike.
	CodeConsentRequired      Code = "consent_required"       // a request needs a grant and none covers it
	CodeConsentMalformed     Code = "consent_malformed"      // the grant's bytes are not consent-grant/1
	CodeConsentForged        Code = "consent_forged"         // its signatures are not its origin's
	CodeConsentExpired       Code = "consent_expired"        // expired, or not valid yet
	CodeConsentWrongAudience Code = "consent_wrong_audience" // made for another institution, node or principal
	CodeConsentOutOfScope    Code = "consent_out_of_scope"   // another action, brain, subject, tenant or origin
	CodeConsentAboveMax      Code = "consent_above_max"      // data above the grant's maximum
	CodeConsentRevoked       Code = "consent_revoked"        // revoked at its origin
	CodeConsentUsedUp        Code = "consent_used_up"        // every use it allows has been made
	CodeConsentUnknown       Code = "consent_unknown"        // its origin holds no such grant

	CodeInternal Code = "internal"
)

// Error is a request the node did not serve, typed by its Code. Message is for the
// caller: it never holds paths, backend addresses or internal error text.
type Error struct {
	Code    Code
	Message string
	// Param names the request member at fault, where there is one.
	Param string
	// RetryAfter is how long to wait, for rate limits.
	RetryAfter time.Duration
	// Receipt is the receipt of the record of this outcome (a refusal's, or the
	// admission's of a request that failed after it), when it is durable.
	Receipt *oar.Receipt
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

func errorf(code Code, format string, a ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, a...)}
}

// errAudit is the answer when a record cannot be written: the request is not served.
func errAudit() *Error {
	return errorf(CodeAuditFailed, "the audit ledger could not record this request, so it was not served")
}

// consentOutcome is a refusal of package consent as a pipeline outcome, with its code;
// an error that is not one is internal (its text stays in the node's log).
func consentOutcome(err error) *Error {
	var ce *consent.Error
	if errors.As(err, &ce) {
		return &Error{Code: Code(ce.Code), Message: ce.Message}
	}
	return errorf(CodeInternal, "the consent grant could not be checked")
}
