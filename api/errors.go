package api

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
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
	invoke.CodePanelNotFound:         http.StatusNotFound,
	invoke.CodeDecisionNotFound:      http.StatusNotFound,
	invoke.CodeUnknownSubject:        http.StatusNotFound,
	invoke.CodeUnknownRecord:         http.StatusNotFound,
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
	invoke.CodeConsentRequired:       http.StatusForbidden,
	invoke.CodeConsentMalformed:      http.StatusBadRequest,
	invoke.CodeConsentForged:         http.StatusForbidden,
	invoke.CodeConsentExpired:        http.StatusForbidden,
	invoke.CodeConsentWrongAudience:  http.StatusForbidden,
	invoke.CodeConsentOutOfScope:     http.StatusForbidden,
	invoke.CodeConsentAboveMax:       http.StatusForbidden,
	invoke.CodeConsentRevoked:        http.StatusForbidden,
	invoke.CodeConsentUsedUp:         http.StatusForbidden,
	invoke.CodeConsentUnknown:        http.StatusNotFound,
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

// CompactReceipt is the X-Sios-Receipt header form of a receipt, an RFC 8941
// dictionary naming the record: its index in the log, the index of the seal over its
// batch, and its record hash — `index=1234, seal=1240, record="4a6d…"`. The full receipt
// is GET /v1/receipts/{index}, or inline on request (FullReceiptHeader).
func CompactReceipt(rc *oar.Receipt) string {
	b := make([]byte, 0, 120)
	b = append(b, "index="...)
	b = strconv.AppendUint(b, rc.Index, 10)
	b = append(b, ", seal="...)
	b = strconv.AppendUint(b, rc.SealIndex, 10)
	b = append(b, `, record="`...)
	b = append(b, rc.RecordHash...)
	return string(append(b, '"'))
}

// ParseCompactReceipt reads an X-Sios-Receipt header as CompactReceipt writes it: the
// record's index, its seal's index and its hex record hash.
func ParseCompactReceipt(h string) (index, seal uint64, record string, err error) {
	bad := func(why string) (uint64, uint64, string, error) {
		return 0, 0, "", fmt.Errorf("X-Sios-Receipt %q: %s (want index=N, seal=N, record=\"HEX\")", oar.Bounded(h, 200), why)
	}
	parts := strings.Split(h, ", ")
	if len(parts) != 3 {
		return bad("not three members")
	}
	iv, ok1 := strings.CutPrefix(parts[0], "index=")
	sv, ok2 := strings.CutPrefix(parts[1], "seal=")
	rv, ok3 := strings.CutPrefix(parts[2], "record=")
	if !ok1 || !ok2 || !ok3 {
		return bad("members out of order or misnamed")
	}
	if index, err = strconv.ParseUint(iv, 10, 63); err != nil || strconv.FormatUint(index, 10) != iv {
		return bad("index is not a decimal integer")
	}
	if seal, err = strconv.ParseUint(sv, 10, 63); err != nil || strconv.FormatUint(seal, 10) != sv || seal <= index {
		return bad("seal is not a decimal integer after index")
	}
	if len(rv) != 66 || rv[0] != '"' || rv[65] != '"' {
		return bad("record is not a quoted SHA-256")
	}
	record = rv[1:65]
	if _, err := hex.DecodeString(record); err != nil || strings.ToLower(record) != record {
		return bad("record is not lower-case hex")
	}
	return index, seal, record, nil
}

// EncodeReceipt is the X-Sios-Receipt-Full header form of a receipt: unpadded base64url JSON.
func EncodeReceipt(rc *oar.Receipt) string {
	b, _ := json.Marshal(rc)
	return base64.RawURLEncoding.EncodeToString(b)
}
