package jcs

import (
	"unicode/utf8"
)

// AppendQuoted appends s as a JSON string exactly as encoding/json writes it: '"',
// '\\' and control characters escaped (\n, \r, \t, \b, \f by name, the rest as
// \u00XX), U+2028 and U+2029 escaped, invalid UTF-8 replaced by \ufffd, and, when
// html is true (json.Marshal's default), '<', '>' and '&' escaped as \u003c, \u003e
// and \u0026. For the node's own outputs that are not canonical (answers, requests to
// model servers, the digest of a request's messages), written without reflection.
func AppendQuoted(dst []byte, s string, html bool) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && (!html || c != '<' && c != '>' && c != '&') {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			if c == '<' || c == '>' || c == '&' {
				dst = append(dst, '\\', 'u', '0', '0', jcsHexDigits[c>>4], jcsHexDigits[c&0xF])
			} else {
				jcsAppendRune(&dst, rune(c)) // the same escapes as a canonical string's
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', jcsHexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
