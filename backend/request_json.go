package backend

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/sios-project/sios/jcs"
)

// The chat request's JSON, written without reflection: encoding it through
// encoding/json cost about a twentieth of the node's CPU per request (every message
// went through MarshalJSON and then a second pass that checks and compacts what
// MarshalJSON returned). The JSON is what encoding/json writes for these types, member
// for member (TestRequestJSONIsEncodingJSON).

// appendJSON appends the request body.
func (w *wireChatRequest) appendJSON(dst []byte) ([]byte, error) {
	r := &w.ChatRequest
	dst = append(dst, `{"model":`...)
	dst = jcs.AppendQuoted(dst, r.Model, true)
	dst = append(dst, `,"messages":`...)
	if r.Messages == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '[')
		for i := range r.Messages {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = r.Messages[i].appendJSON(dst)
		}
		dst = append(dst, ']')
	}
	var err error
	if len(r.Tools) > 0 {
		dst = append(dst, `,"tools":[`...)
		for i, t := range r.Tools {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"type":`...)
			dst = jcs.AppendQuoted(dst, t.Type, true)
			dst = append(dst, `,"function":{"name":`...)
			dst = jcs.AppendQuoted(dst, t.Function.Name, true)
			if t.Function.Description != "" {
				dst = append(dst, `,"description":`...)
				dst = jcs.AppendQuoted(dst, t.Function.Description, true)
			}
			if dst, err = appendRaw(dst, "parameters", t.Function.Parameters); err != nil {
				return nil, err
			}
			if t.Function.Strict != nil {
				dst = append(dst, `,"strict":`...)
				dst = strconv.AppendBool(dst, *t.Function.Strict)
			}
			dst = append(dst, "}}"...)
		}
		dst = append(dst, ']')
	}
	if dst, err = appendRaw(dst, "tool_choice", r.ToolChoice); err != nil {
		return nil, err
	}
	if r.ParallelToolCalls != nil {
		dst = append(dst, `,"parallel_tool_calls":`...)
		dst = strconv.AppendBool(dst, *r.ParallelToolCalls)
	}
	if r.MaxTokens != 0 {
		dst = append(dst, `,"max_tokens":`...)
		dst = strconv.AppendInt(dst, int64(r.MaxTokens), 10)
	}
	for _, f := range []struct {
		name string
		v    *float64
	}{{"temperature", r.Temperature}, {"top_p", r.TopP}, {"frequency_penalty", r.FrequencyPenalty}, {"presence_penalty", r.PresencePenalty}} {
		if f.v == nil {
			continue
		}
		if dst, err = appendFloat(append(append(append(dst, `,"`...), f.name...), `":`...), *f.v); err != nil {
			return nil, fmt.Errorf("%s: %v", f.name, err)
		}
	}
	if len(r.Stop) > 0 {
		dst = append(dst, `,"stop":[`...)
		for i, s := range r.Stop {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = jcs.AppendQuoted(dst, s, true)
		}
		dst = append(dst, ']')
	}
	if r.Seed != nil {
		dst = append(dst, `,"seed":`...)
		dst = strconv.AppendInt(dst, *r.Seed, 10)
	}
	if dst, err = appendRaw(dst, "response_format", r.ResponseFormat); err != nil {
		return nil, err
	}
	if r.User != "" {
		dst = append(dst, `,"user":`...)
		dst = jcs.AppendQuoted(dst, r.User, true)
	}
	if dst, err = appendRaw(dst, "options", r.Options); err != nil {
		return nil, err
	}
	if w.Stream {
		dst = append(dst, `,"stream":true`...)
	}
	if w.StreamOptions != nil {
		dst = append(dst, `,"stream_options":{"include_usage":`...)
		dst = strconv.AppendBool(dst, w.StreamOptions.IncludeUsage)
		dst = append(dst, '}')
	}
	return append(dst, '}'), nil
}

// appendJSON appends the message: content as a string, or as parts when there are
// any; null for an assistant message that only calls tools.
func (m *Message) appendJSON(dst []byte) []byte {
	dst = append(dst, `{"role":`...)
	dst = jcs.AppendQuoted(dst, m.Role, true)
	if m.Name != "" {
		dst = append(dst, `,"name":`...)
		dst = jcs.AppendQuoted(dst, m.Name, true)
	}
	if len(m.ToolCalls) > 0 {
		dst = AppendToolCallsJSON(append(dst, `,"tool_calls":`...), m.ToolCalls)
	}
	if m.ToolCallID != "" {
		dst = append(dst, `,"tool_call_id":`...)
		dst = jcs.AppendQuoted(dst, m.ToolCallID, true)
	}
	dst = append(dst, `,"content":`...)
	switch {
	case len(m.Parts) > 0:
		dst = AppendPartsJSON(dst, m.Parts)
	case m.Content == "" && len(m.ToolCalls) > 0:
		dst = append(dst, "null"...)
	default:
		dst = jcs.AppendQuoted(dst, m.Content, true)
	}
	return append(dst, '}')
}

// AppendToolCallsJSON appends calls as encoding/json writes a []ToolCall (HTML
// escapes on).
func AppendToolCallsJSON(dst []byte, calls []ToolCall) []byte {
	if calls == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '[')
	for i, tc := range calls {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"id":`...)
		dst = jcs.AppendQuoted(dst, tc.ID, true)
		dst = append(dst, `,"type":`...)
		dst = jcs.AppendQuoted(dst, tc.Type, true)
		dst = append(dst, `,"function":{"name":`...)
		dst = jcs.AppendQuoted(dst, tc.Function.Name, true)
		dst = append(dst, `,"arguments":`...)
		dst = jcs.AppendQuoted(dst, tc.Function.Arguments, true)
		dst = append(dst, "}}"...)
	}
	return append(dst, ']')
}

// AppendPartsJSON appends parts as encoding/json writes a []Part (HTML escapes on).
func AppendPartsJSON(dst []byte, parts []Part) []byte {
	if parts == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '[')
	for i, p := range parts {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"type":`...)
		dst = jcs.AppendQuoted(dst, p.Type, true)
		if p.Text != "" {
			dst = append(dst, `,"text":`...)
			dst = jcs.AppendQuoted(dst, p.Text, true)
		}
		if p.ImageURL != nil {
			dst = append(dst, `,"image_url":{"url":`...)
			dst = jcs.AppendQuoted(dst, p.ImageURL.URL, true)
			if p.ImageURL.Detail != "" {
				dst = append(dst, `,"detail":`...)
				dst = jcs.AppendQuoted(dst, p.ImageURL.Detail, true)
			}
			dst = append(dst, '}')
		}
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

// appendRaw appends ,"name":raw (compacted, as encoding/json writes a RawMessage),
// nothing when raw is empty; raw that is not JSON is an error naming the member.
func appendRaw(dst []byte, name string, raw json.RawMessage) ([]byte, error) {
	if len(raw) == 0 {
		return dst, nil
	}
	dst = append(append(append(dst, `,"`...), name...), `":`...)
	b := bytes.NewBuffer(dst)
	if err := json.Compact(b, raw); err != nil {
		return nil, fmt.Errorf("%s is not JSON: %v", name, err)
	}
	return b.Bytes(), nil
}

// appendFloat appends f as encoding/json writes a float64 (ES6 number formatting).
func appendFloat(dst []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, fmt.Errorf("unsupported value %v", f)
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst, nil
}
