package api

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/sios-project/sios/invoke"
	"github.com/sios-project/sios/policy"
)

// EmbeddingRequest is OpenAI's embeddings request; input is a string or an array of strings.
type EmbeddingRequest struct {
	Model string          `json:"model"`
	Input json.RawMessage `json:"input"`
	// Inputs is Input decoded.
	Inputs []string `json:"-"`
}

// EmbeddingResponse is OpenAI's embeddings response.
type EmbeddingResponse struct {
	Object string      `json:"object"`
	Data   []Embedding `json:"data"`
	Model  string      `json:"model"`
	Usage  Usage       `json:"usage"`
}

// Embedding is one vector.
type Embedding struct {
	Object    string    `json:"object"`
	Index     int       `json:"index"`
	Embedding []float32 `json:"embedding"`
}

func (s *Server) embeddings(w http.ResponseWriter, r *http.Request, p *policy.Principal) error {
	var req EmbeddingRequest
	if err := decodeBody(w, r, &req); err != nil {
		return err
	}
	if req.Model == "" {
		return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "missing_model", Param: "model", Message: "model is required"}
	}
	var one string
	if err := json.Unmarshal(req.Input, &one); err == nil {
		req.Inputs = []string{one}
	} else if err := json.Unmarshal(req.Input, &req.Inputs); err != nil {
		return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "invalid_input", Param: "input",
			Message: "input must be a string or an array of strings"}
	}
	if len(req.Inputs) == 0 || len(req.Inputs) > MaxEmbeddingInput {
		return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "invalid_input", Param: "input",
			Message: fmt.Sprintf("input must hold 1 to %d strings (MaxEmbeddingInput)", MaxEmbeddingInput)}
	}
	res, err := s.gw.Embed(r.Context(), &invoke.Embedding{Principal: p, Model: req.Model, Inputs: req.Inputs,
		Classification: classificationHeader(r)})
	if err != nil {
		return err
	}
	if res.Receipt != nil {
		setReceipt(w.Header(), w, res.Receipt)
	}
	resp := EmbeddingResponse{Object: "list", Model: res.Model, Usage: Usage{PromptTokens: res.Usage, TotalTokens: res.Usage}}
	for i, v := range res.Vectors {
		resp.Data = append(resp.Data, Embedding{Object: "embedding", Index: i, Embedding: v})
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}
