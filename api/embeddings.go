package api

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"

	"github.com/sios-project/sios/jcs"

	"github.com/sios-project/sios/invoke"
	"github.com/sios-project/sios/policy"
)

// EmbeddingRequest is OpenAI's embeddings request; input is a string or an array of
// strings. Its members are OpenAI's, and no other (docs/api.md).
type EmbeddingRequest struct {
	Model string          `json:"model"`
	Input json.RawMessage `json:"input"`
	// EncodingFormat is float (the default) or base64: the vector's float32 values,
	// little-endian, in standard base64, as OpenAI sends them. The official Python
	// SDK asks for base64 unless told otherwise.
	EncodingFormat string `json:"encoding_format,omitempty"`
	// Dimensions is taken only when absent or null: the node returns the model's
	// own dimensions and does not cut vectors.
	Dimensions *int `json:"dimensions,omitempty"`
	// User is taken and not used: an embeddings request carries no end-user id into
	// the audit record.
	User string `json:"user,omitempty"`
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

// Embedding is one vector: Embedding is a []float32, or its base64 string when the
// request asked for encoding_format base64.
type Embedding struct {
	Object    string `json:"object"`
	Index     int    `json:"index"`
	Embedding any    `json:"embedding"`
}

// base64Vector is v as OpenAI's base64 encoding_format gives it: the float32 values,
// little-endian, in standard base64.
func base64Vector(v []float32) string {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return base64.StdEncoding.EncodeToString(b)
}

func (s *Server) embeddings(w http.ResponseWriter, r *http.Request, p *policy.Principal) error {
	var req EmbeddingRequest
	data, err := readBody(w, r)
	if err != nil {
		return err
	}
	// Members strictly, values as OpenAI takes them (as a chat request's).
	if err := jcs.DecodeMembers(data, &req); err != nil {
		return strictProblem(err, "the request body is not valid JSON for this endpoint")
	}
	if req.Model == "" {
		return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "missing_model", Param: "model", Message: "model is required"}
	}
	if req.EncodingFormat != "" && req.EncodingFormat != "float" && req.EncodingFormat != "base64" {
		return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "invalid_encoding_format", Param: "encoding_format",
			Message: "encoding_format must be float or base64"}
	}
	if req.Dimensions != nil {
		return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "unsupported_parameter", Param: "dimensions",
			Message: "dimensions: the node returns the model's own dimensions and does not cut vectors"}
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
		var vec any = v
		if req.EncodingFormat == "base64" {
			vec = base64Vector(v)
		}
		resp.Data = append(resp.Data, Embedding{Object: "embedding", Index: i, Embedding: vec})
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}
