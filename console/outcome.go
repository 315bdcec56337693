package console

import (
	"errors"
	"net/http"

	"github.com/sios-project/sios/api"
	"github.com/sios-project/sios/invoke"
)

// outcome is an error of the API's own functions (the decision, consent and role
// gateways) as the console shows it: the API's errors and the pipeline's outcomes are
// written for the caller, so the viewer reads the message the API would send, with
// the status it would answer and the record of a refusal; anything else is a failure
// of the node (logged, not shown).
func outcome(err error) error {
	if err == nil {
		return nil
	}
	var ae *api.Error
	if errors.As(err, &ae) {
		e := &Error{Status: ae.Status, Message: ae.Message}
		if ae.Receipt != nil {
			idx := ae.Receipt.Index
			e.Receipt = &idx
		}
		return e
	}
	var ie *invoke.Error
	if !errors.As(err, &ie) {
		return err
	}
	status, _ := api.StatusOf(ie.Code)
	switch ie.Code { // the role endpoints' own statuses (api/roles.go)
	case invoke.CodeUnknownRole:
		status = http.StatusNotFound
	case invoke.CodeRoleNotNow:
		status = http.StatusConflict
	}
	e := &Error{Status: status, Message: ie.Message}
	if ie.Receipt != nil {
		idx := ie.Receipt.Index
		e.Receipt = &idx
	}
	return e
}
