package api

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/sios-project/sios/invoke"
	"github.com/sios-project/sios/oar"
)

// Error is an error of the API layer itself (authentication, a body that does not
// decode or validate): the status, and what the caller may see. The pipeline's
// outcomes (*invoke.Error) are rendered through StatusOf. Handlers return either, and
// writeError turns it into OpenAI's error shape in one place. Internal detail (paths,
// backend addresses, stack) never goes into Message.
type Error struct {
	Status     int
	Type       string // OpenAI error type, e.g. invalid_request_error
	Code       string // machine-readable code, e.g. model_not_found
	Message    string
	Param      string
	RetryAfter time.Duration // for 429
	Receipt    *oar.Receipt  // the audit record of a refusal
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// Errorf builds an Error.
func Errorf(status int, code, format string, a ...any) *Error {
	return &Error{Status: status, Type: errorType(status), Code: code, Message: fmt.Sprintf(format, a...)}
}

// statuses maps each pipeline outcome to its HTTP status. A code missing here (a peer's
// newer code) is a 502: the failure was elsewhere.
var statuses = map[invoke.Code]int{
	invoke.CodeInvalidRequest:        http.StatusBadRequest,
	invoke.CodeInvalidClassification: http.StatusBadRequest,
	invoke.CodeInvalidMemory:         http.StatusBadRequest,
	invoke.CodeModelNotFound:         http.StatusNotFound,
	invoke.CodeUnknownSubject:        http.StatusNotFound,
	invoke.CodeParameterNotAllowed:   http.StatusBadRequest,
	invoke.CodeUnsupportedContent:    http.StatusBadRequest,
	invoke.CodeBackendModelNotFound:  http.StatusBadGateway,
	invoke.CodeBackendNoTools:        http.StatusBadGateway,
	invoke.CodeBackendClosed:         http.StatusBadGateway,
	invoke.CodeClientClosed:          499, // the caller is gone: nobody reads it; recorded
	invoke.CodePolicyDenied:          http.StatusForbidden,
	invoke.CodeRateLimited:           http.StatusTooManyRequests,
	invoke.CodePeerRateLimited:       http.StatusTooManyRequests,
	invoke.CodeEgressRefused:         http.StatusBadGateway,
	invoke.CodeTimeBudget:            http.StatusGatewayTimeout,
	invoke.CodeAuditFailed:           http.StatusServiceUnavailable,
	invoke.CodeBackendMisconfigured:  http.StatusBadGateway,
	invoke.CodeNoModel:               http.StatusBadGateway,
	invoke.CodeBackendError:          http.StatusBadGateway,
	invoke.CodeBackendUnavailable:    http.StatusBadGateway,
	invoke.CodeRemoteUnavailable:     http.StatusServiceUnavailable,
	invoke.CodeRemoteUnreachable:     http.StatusBadGateway,
	invoke.CodeRemoteTimeout:         http.StatusGatewayTimeout,
	invoke.CodeRemoteInvalidReply:    http.StatusBadGateway,
	invoke.CodeRemoteError:           http.StatusBadGateway,
	invoke.CodePeerUntrusted:         http.StatusForbidden,
	invoke.CodeMalformedCall:         http.StatusBadRequest,
	invoke.CodeInvalidEnvelope:       http.StatusBadRequest,
	invoke.CodeEnvelopeForged:        http.StatusForbidden,
	invoke.CodePayloadMismatch:       http.StatusBadRequest,
	invoke.CodeInvalidPayload:        http.StatusBadRequest,
	invoke.CodeOriginForked:          http.StatusForbidden,
	invoke.CodeEnvelopeRefused:       http.StatusForbidden,
	invoke.CodeInvalidKey:            http.StatusUnauthorized,
	invoke.CodeInvalidToken:          http.StatusUnauthorized,
	invoke.CodeUnmappedIdentity:      http.StatusForbidden,
	invoke.CodeInternal:              http.StatusInternalServerError,
}

// StatusOf is the HTTP status and OpenAI error type of a pipeline outcome.
func StatusOf(c invoke.Code) (status int, typ string) {
	status, ok := statuses[c]
	if !ok {
		status = http.StatusBadGateway
	}
	return status, errorType(status)
}

// fromOutcome renders a pipeline outcome as an API error.
func fromOutcome(e *invoke.Error) *Error {
	status, typ := StatusOf(e.Code)
	return &Error{Status: status, Type: typ, Code: string(e.Code), Message: e.Message, Param: e.Param,
		RetryAfter: e.RetryAfter, Receipt: e.Receipt}
}

// asError is err as the API renders it, or false for an error that is neither an API
// error nor a pipeline outcome (an internal failure).
func asError(err error) (*Error, bool) {
	var ae *Error
	if errors.As(err, &ae) {
		return ae, true
	}
	var ie *invoke.Error
	if errors.As(err, &ie) {
		return fromOutcome(ie), true
	}
	return nil, false
}

func errorType(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "invalid_request_error"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusMethodNotAllowed:
		return "invalid_request_error"
	case http.StatusGatewayTimeout:
		return "timeout_error"
	}
	return "api_error"
}

type errorBody struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    string  `json:"code"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, e *Error) {
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(WriteStallTimeout))
	var b errorBody
	b.Error.Message, b.Error.Type, b.Error.Code = e.Message, e.Type, e.Code
	if e.Param != "" {
		b.Error.Param = &e.Param
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	if e.Receipt != nil {
		setReceipt(h, w, e.Receipt)
	}
	w.WriteHeader(e.Status)
	json.NewEncoder(w).Encode(b)
}

// EncodeReceipt is the X-Sios-Receipt header form of a receipt: unpadded base64url JSON.
func EncodeReceipt(rc *oar.Receipt) string {
	b, _ := json.Marshal(rc)
	return base64.RawURLEncoding.EncodeToString(b)
}
