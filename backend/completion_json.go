package backend

import (
	"math"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/sios-project/sios/jcs"
)

// decodeCompletion reads a non-streamed chat completion as decodeAnswer does. Answers
// of the shape model servers send — a plain answer, any members it does not know,
// strings with escapes — are read in one pass without reflection (readCompletion's
// decoding was 4 % of a node's CPU at 2,000 requests/s); anything else (tool calls, an
// error member, a member given twice, invalid UTF-8, a number that is not a plain
// count, bytes that are not JSON) goes to decodeAnswer, which decides and words the
// error. The two agree on every answer the fast path takes
// (FuzzCompletionFastPathIsDecodeAnswer).
func decodeCompletion(b []byte, c *completion) error {
	if readCompletionFast(b, c) {
		return nil
	}
	*c = completion{}
	return decodeAnswer(b, c)
}

// decodeChunk reads a chat.completion.chunk of a streamed answer as decodeAnswer
// does, by the same fast path where it can: a streamed answer is a chunk per token.
func decodeChunk(b []byte, c *streamChunk) error {
	if readChunkFast(b, c) {
		return nil
	}
	*c = streamChunk{}
	return decodeAnswer(b, c)
}

// maxFastDepth is the deepest nesting the fast path skips through; deeper answers go
// to decodeAnswer.
const maxFastDepth = 32

// maxFastMembers is the most members an object may have for the fast path to check it
// for a member given twice; larger objects go to decodeAnswer.
const maxFastMembers = 24

// fastScan reads JSON from b at i. Its methods return false where the fast path stops
// and leaves the answer to decodeAnswer.
type fastScan struct {
	b   []byte
	i   int
	buf []byte // unescaping
	// all is b as one string, made at the first string without escapes, which is then
	// a substring of it: one allocation for an answer's id, model and content.
	all string
}

// readCompletionFast fills c from b and reports true, or reports false (c then holds
// partial values) where decodeAnswer must decide.
func readCompletionFast(b []byte, c *completion) bool {
	s := fastScan{b: b}
	return s.answer(&c.ID, &c.Model, &c.Usage, func() bool {
		return readChoices(&s, &c.Choices, func(ch *completionChoice, name []byte) bool {
			switch string(name) {
			case "message":
				return s.message(&ch.Message)
			case "finish_reason":
				return s.nullableString(&ch.FinishReason)
			}
			return s.skip(1)
		})
	})
}

// readChunkFast is readCompletionFast for a stream's chunk.
func readChunkFast(b []byte, c *streamChunk) bool {
	s := fastScan{b: b}
	return s.answer(&c.ID, &c.Model, &c.Usage, func() bool {
		return readChoices(&s, &c.Choices, func(ch *streamChoice, name []byte) bool {
			switch string(name) {
			case "index":
				return s.count(&ch.Index)
			case "delta":
				return s.message(&ch.Delta)
			case "finish_reason":
				return s.nullableString(&ch.FinishReason)
			}
			return s.skip(1)
		})
	})
}

// readChoices reads the array of choices into dst, each an object whose members
// member reads (an empty array is an empty slice, as decodeAnswer makes it).
func readChoices[T any](s *fastScan, dst *[]T, member func(ch *T, name []byte) bool) bool {
	*dst = []T{}
	return s.array(func() bool {
		var zero T
		*dst = append(*dst, zero)
		ch := &(*dst)[len(*dst)-1]
		return s.object(func(name []byte) bool { return member(ch, name) })
	})
}

// answer reads a completion or a chunk: the object, its id, model and usage, its
// choices by choices (once the array's null is ruled out), and nothing after it.
func (s *fastScan) answer(id, model *string, usage **Usage, choices func() bool) bool {
	if len(s.b) > math.MaxInt32 { // object keeps names' offsets as int32
		return false
	}
	ok := s.object(func(name []byte) bool {
		switch string(name) {
		case "id":
			return s.nullableString(id)
		case "model":
			return s.nullableString(model)
		case "choices":
			return s.null() || choices()
		case "usage":
			return s.usage(usage)
		case "error":
			return false // an error answer: decodeAnswer keeps it as it came
		}
		return s.skip(0)
	})
	if !ok {
		return false
	}
	s.ws()
	return s.i == len(s.b)
}

// message reads a message or a delta: its content, and tool calls only if there are
// none (tool calls go to decodeAnswer).
func (s *fastScan) message(m *wireMessage) bool {
	if s.null() {
		return true
	}
	return s.object(func(name []byte) bool {
		switch string(name) {
		case "content":
			return s.nullableString(&m.Content)
		case "tool_calls":
			if s.null() {
				return true
			}
			if !s.consume('[') || !s.consume(']') {
				return false
			}
			m.ToolCalls = []wireToolCall{}
			return true
		}
		return s.skip(2)
	})
}

// array reads an array, calling elem with the scan at each element.
func (s *fastScan) array(elem func() bool) bool {
	if !s.consume('[') {
		return false
	}
	if s.consume(']') {
		return true
	}
	for {
		if !elem() {
			return false
		}
		if s.consume(']') {
			return true
		}
		if !s.consume(',') {
			return false
		}
	}
}

func (s *fastScan) usage(u **Usage) bool {
	if s.null() {
		return true
	}
	*u = &Usage{}
	return s.object(func(name []byte) bool {
		switch string(name) {
		case "prompt_tokens":
			return s.count(&(*u).PromptTokens)
		case "completion_tokens":
			return s.count(&(*u).CompletionTokens)
		case "total_tokens":
			return s.count(&(*u).TotalTokens)
		}
		return s.skip(1)
	})
}

// object reads an object, calling member for each member with the scan at its value
// (a name given twice ends the fast path: decodeAnswer refuses it).
func (s *fastScan) object(member func(name []byte) bool) bool {
	if !s.consume('{') {
		return false
	}
	if s.consume('}') {
		return true
	}
	var seen [maxFastMembers]struct{ start, end int32 } // names in s.b
	n := 0
	for {
		name, ok := s.name()
		if !ok || n == maxFastMembers {
			return false
		}
		for _, prev := range seen[:n] {
			if string(s.b[prev.start:prev.end]) == string(name) {
				return false
			}
		}
		seen[n].start, seen[n].end = int32(s.i-1-len(name)), int32(s.i-1)
		n++
		if !s.consume(':') || !member(name) {
			return false
		}
		if s.consume('}') {
			return true
		}
		if !s.consume(',') {
			return false
		}
	}
}

// name reads a member name without escapes and returns its bytes.
func (s *fastScan) name() ([]byte, bool) {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, false
	}
	start := s.i + 1
	j, ascii := s.plainRun(start)
	if j >= len(s.b) || s.b[j] != '"' || !ascii && !utf8.Valid(s.b[start:j]) {
		return nil, false
	}
	s.i = j + 1
	return s.b[start:j], true
}

// plainASCII marks the bytes a string holds as they are: printable ASCII but the
// quote and the backslash.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// plainRun returns the index of the first byte from i on that ends a string or needs
// a look (a quote, a backslash, a control byte), passing over UTF-8 sequences, and
// whether everything before it was ASCII.
func (s *fastScan) plainRun(i int) (int, bool) {
	b, ascii := s.b, true
	for i < len(b) {
		c := b[i]
		if plainASCII[c] {
			i++
			continue
		}
		if c < 0x80 {
			break
		}
		ascii = false
		i++
	}
	return i, ascii
}

// nullableString reads a string into dst, or null (dst unchanged).
func (s *fastScan) nullableString(dst *string) bool {
	if s.null() {
		return true
	}
	v, ok := s.str()
	if ok {
		*dst = v
	}
	return ok
}

// str reads a string, unescaping it. Invalid UTF-8 (which decodeAnswer replaces)
// and a \u escape of a lone surrogate end the fast path.
func (s *fastScan) str() (string, bool) {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return "", false
	}
	start := s.i + 1
	j, ascii := s.plainRun(start)
	if j < len(s.b) && s.b[j] == '"' {
		if !ascii && !utf8.Valid(s.b[start:j]) {
			return "", false
		}
		if s.all == "" {
			s.all = string(s.b)
		}
		s.i = j + 1
		return s.all[start:j], true
	}
	out := append(s.buf[:0], s.b[start:j]...)
	for j < len(s.b) {
		c := s.b[j]
		switch {
		case c == '"':
			if !utf8.Valid(out) {
				return "", false
			}
			s.buf, s.i = out, j+1
			return string(out), true
		case c < 0x20:
			return "", false
		case c != '\\':
			out = append(out, c)
			j++
			continue
		}
		if j+1 >= len(s.b) {
			return "", false
		}
		if e, ok := jcs.ShortEscape(s.b[j+1]); ok {
			out = append(out, e)
			j += 2
			continue
		}
		if s.b[j+1] != 'u' {
			return "", false
		}
		r, ok := jcs.Hex4(s.b[j+2:])
		if !ok {
			return "", false
		}
		if utf16.IsSurrogate(r) {
			if r >= 0xDC00 || j+12 > len(s.b) || s.b[j+6] != '\\' || s.b[j+7] != 'u' {
				return "", false
			}
			lo, ok := jcs.Hex4(s.b[j+8:])
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return "", false
			}
			out = utf8.AppendRune(out, utf16.DecodeRune(r, lo))
			j += 12
			continue
		}
		out = utf8.AppendRune(out, r)
		j += 6
	}
	return "", false
}

// count reads a token count: digits without a sign, fraction or exponent, or null.
func (s *fastScan) count(dst *int) bool {
	if s.null() {
		return true
	}
	start := s.i
	n := 0
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		n = n*10 + int(s.b[s.i]-'0')
		s.i++
	}
	digits := s.i - start
	if digits == 0 || digits > 18 || digits > 1 && s.b[start] == '0' || s.i < len(s.b) && isNumberByte(s.b[s.i]) {
		return false
	}
	*dst = n
	return true
}

func isNumberByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-'
}

// null reads the literal null if it comes next.
func (s *fastScan) null() bool {
	s.ws()
	if len(s.b)-s.i >= 4 && string(s.b[s.i:s.i+4]) == "null" {
		s.i += 4
		return true
	}
	return false
}

// skip reads past any JSON value, checking it as decodeAnswer would.
func (s *fastScan) skip(depth int) bool {
	if depth > maxFastDepth {
		return false
	}
	s.ws()
	if s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '"':
		return s.skipString()
	case c == '{':
		return s.object(func([]byte) bool { return s.skip(depth + 1) })
	case c == '[':
		return s.array(func() bool { return s.skip(depth + 1) })
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	}
	return false
}

func (s *fastScan) literal(lit string) bool {
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return false
}

// skipString reads past a string without keeping it.
func (s *fastScan) skipString() bool {
	start := s.i + 1
	j, ascii := s.plainRun(start)
	switch {
	case j >= len(s.b):
		return false
	case s.b[j] == '"':
		if !ascii && !utf8.Valid(s.b[start:j]) {
			return false
		}
		s.i = j + 1
		return true
	case s.b[j] == '\\':
		// Rare in members nobody reads: unescape it to check it.
		_, ok := s.str()
		return ok
	}
	return false // a control byte
}

// number reads past a JSON number (RFC 8259 section 6).
func (s *fastScan) number() bool {
	b, i := s.b, s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i)
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		if d := digits(b, i+1); d > i+1 {
			i = d
		} else {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if d := digits(b, i); d > i {
			i = d
		} else {
			return false
		}
	}
	if i < len(b) && isNumberByte(b[i]) {
		return false
	}
	s.i = i
	return true
}

// digits returns the index of the first byte from i on that is not a decimal digit.
func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

func (s *fastScan) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// consume reads the byte c if it comes next (after whitespace).
func (s *fastScan) consume(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}
