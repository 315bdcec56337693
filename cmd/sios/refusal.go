package main

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/sios-project/sios/api"
	"github.com/sios-project/sios/backend"
)

// maxNodeAnswer bounds an answer of the node the CLI reads: room for a model's answer of
// backend.DefaultMaxResponseBytes with every character escaped, and the JSON around it.
// A longer one is refused naming this limit, not cut short into JSON that does not parse.
const maxNodeAnswer = 6*backend.DefaultMaxResponseBytes + 1<<20

// nodeRefusal is the error for an answer of the node's API that is not a success: its
// status, code and message, with the audit record of the refusal (named by the answer's
// X-Sios-Receipt) as a hint.
func nodeRefusal(resp *http.Response, body []byte) error {
	var eb struct {
		Error struct {
			Message string `json:"message"`
			Code    string `json:"code"`
		} `json:"error"`
	}
	json.Unmarshal(body, &eb)
	msg := fmt.Errorf("the node refused (%d %s): %s", resp.StatusCode, eb.Error.Code, eb.Error.Message)
	if idx, seal, _, err := api.ParseCompactReceipt(resp.Header.Get(api.ReceiptHeader)); err == nil {
		return withHint(msg, fmt.Sprintf("the refusal is audit record %d (seal %d)", idx, seal))
	}
	return msg
}
