package backend

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Error is an error reported by a model server. Test for it with errors.As; the
// errors this package returns wrap it with the endpoint that answered.
type Error struct {
	// Status is the HTTP status, or 0 when the server reported the error inside a
	// stream it had already begun with 200 OK.
	Status int
	// Message is the server's own error message (OpenAI's error.message, or the
	// shapes Ollama and vLLM use), at most MaxErrorMessage bytes, on one line. It
	// never holds the request body: the client sends none of it here, and text of the
	// request that a server echoes into its message is cut out.
	Message string
}

func (e *Error) Error() string {
	var s string
	if e.Status == 0 {
		s = "model server reported an error mid-stream"
	} else {
		s = fmt.Sprintf("model server answered %d %s", e.Status, http.StatusText(e.Status))
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// serverMessage extracts the error message from a server's error body: OpenAI's
// {"error":{"message":…}}, Ollama's {"error":"…"}, vLLM's older {"message":…}, or a
// short plain-text body.
func serverMessage(body []byte) string {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return ""
	}
	var v struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
		Detail  string          `json:"detail"`
	}
	if body[0] == '{' {
		if json.Unmarshal(body, &v) != nil {
			return ""
		}
		if m := errorField(v.Error); m != "" {
			return m
		}
		if v.Message != "" {
			return v.Message
		}
		return v.Detail
	}
	if body[0] == '<' { // an HTML page from a proxy says nothing useful
		return ""
	}
	line, _, _ := bytes.Cut(body, []byte("\n"))
	return string(line)
}

// errorField reads an "error" member that is either a string or an object with a
// message.
func errorField(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var o struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(raw, &o) == nil {
		return o.Message
	}
	return ""
}

// minScrubLen is the shortest request text cut out of a server message; shorter text
// would cut ordinary words.
const minScrubLen = 8

// cleanMessage makes a server message safe to carry: request text the server echoed
// (sent), as it was sent or escaped as a JSON string (llama-server quotes a message it
// cannot parse that way, Python servers with non-ASCII as \u escapes), is cut out, as
// is anything after an "input" member (vLLM's validation errors quote the request
// there); control characters become spaces; the result is at most MaxErrorMessage
// bytes.
func cleanMessage(msg string, sent []string) string {
	for _, marker := range []string{`'input':`, `"input":`} {
		if i := strings.Index(msg, marker); i >= 0 {
			msg = msg[:i] + "[request text removed]"
		}
	}
	for _, s := range sent {
		if len(s) < minScrubLen {
			continue
		}
		for _, form := range []string{s, jsonEscaped(s, false), jsonEscaped(s, true)} {
			if strings.Contains(msg, form) {
				msg = strings.ReplaceAll(msg, form, "[request text removed]")
			}
		}
	}
	msg = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, msg)
	msg = strings.TrimSpace(strings.ToValidUTF8(msg, "\uFFFD"))
	if len(msg) > MaxErrorMessage {
		cut := MaxErrorMessage - len("…")
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "…"
	}
	return msg
}

// jsonEscaped is s as it appears inside a JSON string, without the quotes: quote,
// backslash and control characters escaped, and with asciiOnly every non-ASCII
// character as \u escapes too (Python's json.dumps default).
func jsonEscaped(s string, asciiOnly bool) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || (asciiOnly && r > 0x7e):
			for _, u := range utf16.Encode([]rune{r}) {
				fmt.Fprintf(&b, `\u%04x`, u)
			}
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// requestTexts lists the text a chat request sent, for cleanMessage.
func requestTexts(req *ChatRequest) []string {
	var out []string
	for _, m := range req.Messages {
		out = append(out, m.Content)
		for _, tc := range m.ToolCalls {
			out = append(out, tc.Function.Arguments)
		}
	}
	return out
}
