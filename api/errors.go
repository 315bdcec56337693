package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Error is an API error: the status, and what the caller may see. Handlers return it
// and writeError turns it into OpenAI's error shape in one place. Internal detail
// (paths, backend addresses, stack) never goes into Message.
type Error struct {
	Status     int
	Type       string // OpenAI error type, e.g. invalid_request_error
	Code       string // machine-readable code, e.g. model_not_found
	Message    string
	Param      string
	RetryAfter time.Duration // for 429
	Receipt    string        // X-Sios-Receipt of the audit record of a refusal
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// Errorf builds an Error.
func Errorf(status int, code, format string, a ...any) *Error {
	return &Error{Status: status, Type: errorType(status), Code: code, Message: fmt.Sprintf(format, a...)}
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
	if e.Receipt != "" {
		h.Set(ReceiptHeader, e.Receipt)
	}
	w.WriteHeader(e.Status)
	json.NewEncoder(w).Encode(b)
}
