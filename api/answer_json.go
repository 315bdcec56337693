package api

import (
	"strconv"

	"github.com/sios-project/sios/jcs"
)

// A chat completion and its stream's chunks, written without reflection: every answer
// goes through here, and encoding/json cost several microseconds of CPU per answer.
// The JSON is what encoding/json writes for these types with HTML escaping off
// (TestAnswerJSONIsEncodingJSON, FuzzAnswerJSON).

func (c *completion) appendJSON(dst []byte) []byte {
	dst = append(dst, `{"id":`...)
	dst = jcs.AppendQuoted(dst, c.ID, false)
	dst = append(dst, `,"object":`...)
	dst = jcs.AppendQuoted(dst, c.Object, false)
	dst = append(dst, `,"created":`...)
	dst = strconv.AppendInt(dst, c.Created, 10)
	dst = append(dst, `,"model":`...)
	dst = jcs.AppendQuoted(dst, c.Model, false)
	dst = append(dst, `,"system_fingerprint":`...)
	dst = jcs.AppendQuoted(dst, c.SystemFingerprint, false)
	dst = append(dst, `,"choices":`...)
	if c.Choices == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '[')
		for i := range c.Choices {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = c.Choices[i].appendJSON(dst)
		}
		dst = append(dst, ']')
	}
	if u := c.Usage; u != nil {
		dst = append(dst, `,"usage":{"prompt_tokens":`...)
		dst = strconv.AppendInt(dst, int64(u.PromptTokens), 10)
		dst = append(dst, `,"completion_tokens":`...)
		dst = strconv.AppendInt(dst, int64(u.CompletionTokens), 10)
		dst = append(dst, `,"total_tokens":`...)
		dst = strconv.AppendInt(dst, int64(u.TotalTokens), 10)
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

func (ch *wireChoice) appendJSON(dst []byte) []byte {
	dst = append(dst, `{"index":`...)
	dst = strconv.AppendInt(dst, int64(ch.Index), 10)
	if m := ch.Message; m != nil {
		dst = append(dst, `,"message":{"role":`...)
		dst = jcs.AppendQuoted(dst, m.Role, false)
		dst = append(dst, `,"content":`...)
		dst = appendOptString(dst, m.Content)
		if len(m.ToolCalls) > 0 {
			dst = appendToolCalls(append(dst, ','), m.ToolCalls)
		}
		dst = append(dst, '}')
	}
	if d := ch.Delta; d != nil {
		dst = append(dst, `,"delta":{`...)
		n := len(dst)
		if d.Role != "" {
			dst = append(dst, `"role":`...)
			dst = jcs.AppendQuoted(dst, d.Role, false)
		}
		if d.Content != nil {
			if len(dst) > n {
				dst = append(dst, ',')
			}
			dst = append(dst, `"content":`...)
			dst = jcs.AppendQuoted(dst, *d.Content, false)
		}
		if len(d.ToolCalls) > 0 {
			if len(dst) > n {
				dst = append(dst, ',')
			}
			dst = appendToolCalls(dst, d.ToolCalls)
		}
		dst = append(dst, '}')
	}
	dst = append(dst, `,"finish_reason":`...)
	dst = appendOptString(dst, ch.FinishReason)
	return append(dst, '}')
}

// appendToolCalls appends "tool_calls":[…].
func appendToolCalls(dst []byte, calls []wireToolCall) []byte {
	dst = append(dst, `"tool_calls":[`...)
	for i, tc := range calls {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '{')
		if tc.Index != nil {
			dst = append(dst, `"index":`...)
			dst = strconv.AppendInt(dst, int64(*tc.Index), 10)
			dst = append(dst, ',')
		}
		dst = append(dst, `"id":`...)
		dst = jcs.AppendQuoted(dst, tc.ID, false)
		dst = append(dst, `,"type":`...)
		dst = jcs.AppendQuoted(dst, tc.Type, false)
		dst = append(dst, `,"function":{"name":`...)
		dst = jcs.AppendQuoted(dst, tc.Function.Name, false)
		dst = append(dst, `,"arguments":`...)
		dst = jcs.AppendQuoted(dst, tc.Function.Arguments, false)
		dst = append(dst, "}}"...)
	}
	return append(dst, ']')
}

// appendOptString appends *s, or null.
func appendOptString(dst []byte, s *string) []byte {
	if s == nil {
		return append(dst, "null"...)
	}
	return jcs.AppendQuoted(dst, *s, false)
}
