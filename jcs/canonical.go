// Package jcs implements the JSON Canonicalization Scheme (RFC 8785, "JCS"): the
// canonical encoding that every signed or hashed sios document uses.
//
// Canonicalize, AppendCanonical and IsCanonical accept strict I-JSON
// (RFC 7493) text and produce its RFC 8785 canonical form: no insignificant
// whitespace, object members sorted by the UTF-16 code units of their names,
// strings with only the mandatory escapes, and numbers formatted the way
// ECMAScript's Number.prototype.toString formats an IEEE-754 double.
//
// Strict I-JSON here means: valid UTF-8 without lone surrogates or Unicode
// noncharacters, no duplicate member names (compared after unescaping), numbers
// that fit an IEEE-754 double, nesting at most MaxDepth deep, nothing after the
// value. CheckCanonical says why bytes are not canonical, AppendNested places a
// value inside a larger canonical document under the same depth rule, and
// Unmarshal decodes outside bytes into Go values so strictly that no two readers
// can see different values in one document.
package jcs

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"
	"unsafe"
)

// MaxDepth is the maximum nesting depth of arrays and objects accepted by
// Canonicalize. A top-level array or object is at depth 1; each array or object
// inside it adds one: {"a":{"b":[1]}} nests 3 deep. Scalars add nothing.
const MaxDepth = 64

// ErrDepth marks input rejected because it nests deeper than MaxDepth.
var ErrDepth = errors.New("nesting depth exceeds MaxDepth")

// ErrNotCanonical marks input that is valid strict I-JSON but not in its
// canonical form.
var ErrNotCanonical = errors.New("not in canonical form (RFC 8785)")

// NotCanonicalError is CheckCanonical's error for valid input that is not in
// canonical form: Offset is the first byte that differs from it.
type NotCanonicalError struct{ Offset int }

func (e *NotCanonicalError) Error() string {
	return fmt.Sprintf("not in canonical form (RFC 8785) from byte offset %d", e.Offset)
}

func (e *NotCanonicalError) Unwrap() error { return ErrNotCanonical }

// Canonicalize parses the JSON text in and returns its RFC 8785 canonical
// form. Input must be strict I-JSON; any violation is reported as an error
// naming the byte offset in in and the reason.
func Canonicalize(in []byte) ([]byte, error) {
	// Canonical output is rarely longer than the input (only some number
	// spellings grow), so len(in) avoids regrowth in the common case.
	return AppendCanonical(make([]byte, 0, len(in)), in)
}

// AppendCanonical is Canonicalize appending to dst (to avoid allocations on
// hot paths). On error it returns dst unchanged in length, although bytes in
// its spare capacity may have been overwritten. in must not overlap the
// spare capacity of dst.
func AppendCanonical(dst, in []byte) ([]byte, error) {
	return appendCanonical(dst, in, 0, false)
}

// AppendNested is AppendCanonical for a value that will sit inside depth
// enclosing arrays or objects of a larger canonical document: the value's own
// arrays and objects count from depth+1, so that the whole document stays within
// MaxDepth. It also refuses any number whose canonical form denotes another value
// than its text (such as 12345678901234567890, which a double rounds, or 1e-400,
// which underflows to 0), so that nothing a caller gave is silently changed;
// spellings of the same value (2.50, 1E2) are accepted and rewritten.
func AppendNested(dst, in []byte, depth int) ([]byte, error) {
	return appendCanonical(dst, in, depth, true)
}

func appendCanonical(dst, in []byte, depth int, exact bool) ([]byte, error) {
	p := jcsParserPool.Get().(*jcsParser)
	p.in = in
	p.pos = 0
	p.out = dst
	p.exact = exact
	err := p.document(depth)
	out := p.out
	p.release()
	if err != nil {
		return dst, err
	}
	return out, nil
}

// Validate reports whether in is strict I-JSON, in any spelling, naming the byte
// offset and the reason when it is not.
func Validate(in []byte) error {
	bp := jcsBufPool.Get().(*[]byte)
	out, err := AppendCanonical((*bp)[:0], in)
	if cap(out) <= jcsMaxPooled {
		*bp = out[:0]
		jcsBufPool.Put(bp)
	}
	return err
}

// validateExact is Validate that also refuses numbers a double would change
// (AppendNested's rule).
func validateExact(in []byte) error {
	bp := jcsBufPool.Get().(*[]byte)
	out, err := AppendNested((*bp)[:0], in, 0)
	if cap(out) <= jcsMaxPooled {
		*bp = out[:0]
		jcsBufPool.Put(bp)
	}
	return err
}

// CheckCanonical is IsCanonical with the reason: nil when b is exactly its own
// canonical form; the parse error (naming the offset and the rule, for instance
// ErrDepth) when b is not strict I-JSON; else an error wrapping ErrNotCanonical
// that names the first byte that differs from the canonical form.
func CheckCanonical(b []byte) error {
	bp := jcsBufPool.Get().(*[]byte)
	out, err := AppendCanonical((*bp)[:0], b)
	if err == nil && !bytes.Equal(out, b) {
		i := 0
		for i < len(out) && i < len(b) && out[i] == b[i] {
			i++
		}
		err = &NotCanonicalError{Offset: i}
	}
	if cap(out) <= jcsMaxPooled {
		*bp = out[:0]
		jcsBufPool.Put(bp)
	}
	return err
}

// IsCanonical reports whether b is already exactly in canonical form, that
// is, whether b is valid input and Canonicalize(b) would return b unchanged.
func IsCanonical(b []byte) bool {
	bp := jcsBufPool.Get().(*[]byte)
	out, err := AppendCanonical((*bp)[:0], b)
	ok := err == nil && bytes.Equal(out, b)
	if cap(out) <= jcsMaxPooled {
		*bp = out[:0]
		jcsBufPool.Put(bp)
	}
	return ok
}

// jcsMaxPooled bounds what pools keep so one huge document does not pin
// memory forever.
const jcsMaxPooled = 64 << 10

var (
	jcsParserPool = sync.Pool{New: func() any { return new(jcsParser) }}
	jcsBufPool    = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}
)

// jcsError is the error returned for rejected input.
type jcsError struct {
	Offset int // byte offset in the input
	Reason string
	kind   error // a sentinel the error matches with errors.Is, or nil
}

func (e *jcsError) Error() string {
	return "jcs: invalid input at byte offset " + strconv.Itoa(e.Offset) + ": " + e.Reason
}

func (e *jcsError) Unwrap() error { return e.kind }

// jcsMember records one object member already written to jcsParser.out, so that
// an object can be re-sorted after all of its members have been parsed.
type jcsMember struct {
	start, end     int  // span of `"name":value` in out
	keyOff, keyLen int  // unescaped name, in out or (if inKeybuf) in keybuf
	inKeybuf       bool // name needed escapes in canonical form
	inOff          int  // input offset of the name, for error messages
}

// jcsParser is a single-pass recursive descent parser that writes canonical
// output as it goes; objects are reordered in place only when their members
// arrive out of order, so already-canonical input costs one scan and one copy.
type jcsParser struct {
	in    []byte
	pos   int
	out   []byte
	exact bool // refuse numbers whose canonical form has another value

	// Reused across calls through jcsParserPool; each is used as a stack by
	// nested objects, which truncate back to their base on return.
	members []jcsMember
	keybuf  []byte
	scratch []byte
}

func (p *jcsParser) release() {
	p.in, p.out = nil, nil
	if cap(p.members) > 4096 {
		p.members = nil
	}
	if cap(p.keybuf) > jcsMaxPooled {
		p.keybuf = nil
	}
	if cap(p.scratch) > jcsMaxPooled {
		p.scratch = nil
	}
	p.members, p.keybuf, p.scratch = p.members[:0], p.keybuf[:0], p.scratch[:0]
	jcsParserPool.Put(p)
}

func (p *jcsParser) fail(off int, format string, args ...any) error {
	return &jcsError{Offset: off, Reason: fmt.Sprintf(format, args...)}
}

func (p *jcsParser) eof(what string) error {
	return p.fail(len(p.in), "unexpected end of input %s", what)
}

// badChar describes the byte at off, which was not what the grammar wanted.
func (p *jcsParser) badChar(off int, want string) error {
	c := p.in[off]
	if c >= 0x80 {
		r, size := utf8.DecodeRune(p.in[off:])
		if r == utf8.RuneError && size == 1 {
			return p.fail(off, "invalid UTF-8 byte 0x%02x, expected %s", c, want)
		}
		return p.fail(off, "invalid character %q, expected %s", r, want)
	}
	return p.fail(off, "invalid character %q, expected %s", c, want)
}

func (p *jcsParser) document(depth int) error {
	if err := p.value(depth); err != nil {
		return err
	}
	p.skipWS()
	if p.pos < len(p.in) {
		return p.fail(p.pos, "trailing data after top-level value")
	}
	return nil
}

func (p *jcsParser) skipWS() {
	for p.pos < len(p.in) {
		switch p.in[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// value parses one JSON value found at nesting depth depth.
func (p *jcsParser) value(depth int) error {
	p.skipWS()
	if p.pos >= len(p.in) {
		return p.eof("where a value was expected")
	}
	switch c := p.in[p.pos]; c {
	case '{':
		return p.object(depth + 1)
	case '[':
		return p.array(depth + 1)
	case '"':
		_, err := p.str()
		return err
	case 't':
		return p.literal("true")
	case 'f':
		return p.literal("false")
	case 'n':
		return p.literal("null")
	case 'N', 'I':
		return p.fail(p.pos, "NaN and Infinity are not valid JSON numbers")
	default:
		if c == '-' || jcsIsDigit(c) {
			return p.number()
		}
		return p.badChar(p.pos, "a JSON value")
	}
}

func jcsIsDigit(c byte) bool { return c >= '0' && c <= '9' }

func (p *jcsParser) literal(lit string) error {
	rest := p.in[p.pos:]
	if len(rest) >= len(lit) && string(rest[:len(lit)]) == lit {
		p.out = append(p.out, lit...)
		p.pos += len(lit)
		return nil
	}
	if len(rest) < len(lit) && string(rest) == lit[:len(rest)] {
		return p.eof("in literal " + lit)
	}
	return p.fail(p.pos, "invalid literal, expected %s", lit)
}

func (p *jcsParser) depthError(depth int) error {
	return &jcsError{Offset: p.pos, Reason: fmt.Sprintf("nesting depth exceeds MaxDepth (%d): an array or object at depth %d", MaxDepth, depth), kind: ErrDepth}
}

func (p *jcsParser) array(depth int) error {
	if depth > MaxDepth {
		return p.depthError(depth)
	}
	p.pos++
	p.out = append(p.out, '[')
	p.skipWS()
	if p.pos < len(p.in) && p.in[p.pos] == ']' {
		p.pos++
		p.out = append(p.out, ']')
		return nil
	}
	for {
		if err := p.value(depth); err != nil {
			return err
		}
		p.skipWS()
		if p.pos >= len(p.in) {
			return p.eof("in array")
		}
		switch p.in[p.pos] {
		case ',':
			p.pos++
			p.out = append(p.out, ',')
		case ']':
			p.pos++
			p.out = append(p.out, ']')
			return nil
		default:
			return p.badChar(p.pos, "',' or ']' in array")
		}
	}
}

func (p *jcsParser) object(depth int) error {
	if depth > MaxDepth {
		return p.depthError(depth)
	}
	p.pos++
	p.out = append(p.out, '{')
	p.skipWS()
	if p.pos < len(p.in) && p.in[p.pos] == '}' {
		p.pos++
		p.out = append(p.out, '}')
		return nil
	}
	contentStart := len(p.out)
	base, keyBase := len(p.members), len(p.keybuf)
	sorted := true
	for {
		p.skipWS()
		if p.pos >= len(p.in) {
			return p.eof("in object")
		}
		if p.in[p.pos] != '"' {
			return p.badChar(p.pos, "'\"' starting an object member name")
		}
		m := jcsMember{start: len(p.out), inOff: p.pos}
		escaped, err := p.str()
		if err != nil {
			return err
		}
		if escaped {
			// Escapes sort by the character they stand for, not by '\\',
			// so keep an unescaped copy for comparisons.
			m.keyOff = len(p.keybuf)
			p.keybuf = jcsUnescape(p.keybuf, p.out[m.start+1:len(p.out)-1])
			m.keyLen = len(p.keybuf) - m.keyOff
			m.inKeybuf = true
		} else {
			m.keyOff = m.start + 1
			m.keyLen = len(p.out) - m.start - 2
		}
		// While members arrive in order, comparing with the previous name
		// both finds duplicates early and proves no reordering is needed.
		if sorted && len(p.members) > base {
			switch jcsCompareUTF16(p.key(&p.members[len(p.members)-1]), p.key(&m)) {
			case 0:
				return p.dupError(&m)
			case 1:
				sorted = false
			}
		}
		p.skipWS()
		if p.pos >= len(p.in) {
			return p.eof("after object member name")
		}
		if p.in[p.pos] != ':' {
			return p.badChar(p.pos, "':' after object member name")
		}
		p.pos++
		p.out = append(p.out, ':')
		if err := p.value(depth); err != nil {
			return err
		}
		m.end = len(p.out)
		p.members = append(p.members, m)
		p.skipWS()
		if p.pos >= len(p.in) {
			return p.eof("in object")
		}
		c := p.in[p.pos]
		if c == ',' {
			p.pos++
			p.out = append(p.out, ',')
			continue
		}
		if c != '}' {
			return p.badChar(p.pos, "',' or '}' in object")
		}
		p.pos++
		break
	}
	if !sorted {
		if err := p.reorder(base, contentStart); err != nil {
			return err
		}
	}
	p.out = append(p.out, '}')
	p.members = p.members[:base]
	p.keybuf = p.keybuf[:keyBase]
	return nil
}

func (p *jcsParser) key(m *jcsMember) []byte {
	if m.inKeybuf {
		return p.keybuf[m.keyOff : m.keyOff+m.keyLen]
	}
	return p.out[m.keyOff : m.keyOff+m.keyLen]
}

func (p *jcsParser) dupError(m *jcsMember) error {
	return p.fail(m.inOff, "duplicate object member name %q", p.key(m))
}

// reorder sorts the members of the object whose content (everything between
// the braces) starts at out[contentStart:] and whose member records are
// members[base:], rewriting that content in place.
func (p *jcsParser) reorder(base, contentStart int) error {
	ms := p.members[base:]
	slices.SortFunc(ms, func(a, b jcsMember) int {
		return jcsCompareUTF16(p.key(&a), p.key(&b))
	})
	for i := 1; i < len(ms); i++ {
		if jcsCompareUTF16(p.key(&ms[i-1]), p.key(&ms[i])) == 0 {
			// Report the later occurrence, as a streaming reader would.
			if ms[i-1].inOff > ms[i].inOff {
				return p.dupError(&ms[i-1])
			}
			return p.dupError(&ms[i])
		}
	}
	p.scratch = append(p.scratch[:0], p.out[contentStart:]...)
	w := contentStart
	for i := range ms {
		if i > 0 {
			p.out[w] = ','
			w++
		}
		w += copy(p.out[w:], p.scratch[ms[i].start-contentStart:ms[i].end-contentStart])
	}
	return nil
}

// jcsCompareUTF16 orders valid UTF-8 strings by their UTF-16 code units, as
// RFC 8785 section 3.2.3 requires. UTF-8 byte order equals code point order,
// which differs from UTF-16 order only between U+E000..U+FFFF and
// supplementary characters (encoded as surrogates 0xD800..0xDFFF in UTF-16).
func jcsCompareUTF16(a, b []byte) int {
	n := min(len(a), len(b))
	i := 0
	for i < n && a[i] == b[i] {
		i++
	}
	if i == n {
		switch {
		case len(a) < len(b):
			return -1
		case len(a) > len(b):
			return 1
		}
		return 0
	}
	ca, cb := a[i], b[i]
	// With an equal prefix, i is at the same position within a character in
	// both strings, so if either byte is a lead byte both are. Lead bytes
	// 0xEE/0xEF start U+E000..U+FFFF; 0xF0..0xF4 start supplementary ones.
	if ca >= 0xEE && cb >= 0xEE && (ca >= 0xF0) != (cb >= 0xF0) {
		if ca >= 0xF0 {
			return -1
		}
		return 1
	}
	if ca < cb {
		return -1
	}
	return 1
}

// jcsUnescape appends to dst the UTF-8 string whose canonical JSON
// string content (without quotes) is s. Only the escapes that
// jcsAppendRune produces can occur.
func jcsUnescape(dst, s []byte) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			dst = append(dst, c)
			continue
		}
		i++
		switch s[i] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u': // \u00xx
			dst = append(dst, jcsUnhex(s[i+3])<<4|jcsUnhex(s[i+4]))
			i += 4
		default: // '"' or '\\'
			dst = append(dst, s[i])
		}
	}
	return dst
}

func jcsUnhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10
	}
	return 0xff
}

// jcsStrSafe marks bytes that are copied through unchanged inside strings.
var jcsStrSafe = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const jcsHexDigits = "0123456789abcdef"

// str parses a string starting at the opening quote and writes its
// canonical form. escaped reports whether the output contains a backslash.
func (p *jcsParser) str() (escaped bool, err error) {
	in := p.in
	i := p.pos + 1
	p.out = append(p.out, '"')
	for {
		start := i
		for i < len(in) && jcsStrSafe[in[i]] {
			i++
		}
		p.out = append(p.out, in[start:i]...)
		if i >= len(in) {
			return escaped, p.eof("in string")
		}
		switch c := in[i]; {
		case c == '"':
			p.out = append(p.out, '"')
			p.pos = i + 1
			return escaped, nil
		case c == '\\':
			r, n, err := p.escape(i)
			if err != nil {
				return escaped, err
			}
			i += n
			if jcsAppendRune(&p.out, r) {
				escaped = true
			}
		case c < 0x20:
			return escaped, p.fail(i, "control character 0x%02x in string must be escaped", c)
		default:
			r, size := utf8.DecodeRune(in[i:])
			if r == utf8.RuneError && size == 1 {
				return escaped, p.fail(i, "invalid UTF-8 byte 0x%02x in string", c)
			}
			if jcsNoncharacter(r) {
				return escaped, p.fail(i, "noncharacter U+%04X not allowed in I-JSON string", r)
			}
			p.out = append(p.out, in[i:i+size]...)
			i += size
		}
	}
}

// escape decodes the escape sequence at in[i] (a backslash), returning the
// character and the number of input bytes consumed.
func (p *jcsParser) escape(i int) (rune, int, error) {
	in := p.in
	if i+1 >= len(in) {
		return 0, 0, p.eof("in string escape")
	}
	if b, ok := ShortEscape(in[i+1]); ok {
		return rune(b), 2, nil
	}
	switch c := in[i+1]; c {
	case 'u':
		r, err := p.hex4(i)
		if err != nil {
			return 0, 0, err
		}
		switch {
		case r >= 0xDC00 && r <= 0xDFFF:
			return 0, 0, p.fail(i, "lone low surrogate \\u%04x in string", r)
		case r >= 0xD800 && r <= 0xDBFF:
			for j, want := range [2]byte{'\\', 'u'} {
				if i+6+j >= len(in) {
					return 0, 0, p.eof("in string after high surrogate")
				}
				if in[i+6+j] != want {
					return 0, 0, p.fail(i, "lone high surrogate \\u%04x in string", r)
				}
			}
			lo, err := p.hex4(i + 6)
			if err != nil {
				return 0, 0, err
			}
			if lo < 0xDC00 || lo > 0xDFFF {
				return 0, 0, p.fail(i, "high surrogate \\u%04x not followed by a low surrogate (got \\u%04x)", r, lo)
			}
			r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
			if jcsNoncharacter(r) {
				return 0, 0, p.fail(i, "noncharacter U+%04X not allowed in I-JSON string", r)
			}
			return r, 12, nil
		case jcsNoncharacter(r):
			return 0, 0, p.fail(i, "noncharacter U+%04X not allowed in I-JSON string", r)
		}
		return r, 6, nil
	default:
		if c < 0x20 || c >= 0x80 {
			return 0, 0, p.fail(i, "invalid escape sequence (backslash followed by byte 0x%02x)", c)
		}
		return 0, 0, p.fail(i, "invalid escape sequence \\%c", c)
	}
}

// hex4 decodes the four hex digits of the \uXXXX escape at in[i].
func (p *jcsParser) hex4(i int) (rune, error) {
	var r rune
	for j := i + 2; j < i+6; j++ {
		if j >= len(p.in) {
			return 0, p.eof("in \\u escape")
		}
		v := jcsUnhex(p.in[j])
		if v == 0xff {
			return 0, p.fail(j, "invalid hex digit in \\u escape")
		}
		r = r<<4 | rune(v)
	}
	return r, nil
}

// jcsNoncharacter reports Unicode noncharacters, which I-JSON (RFC 7493
// section 2.1) forbids alongside surrogates.
func jcsNoncharacter(r rune) bool {
	return r >= 0xFDD0 && r <= 0xFDEF || r&0xFFFE == 0xFFFE
}

// jcsAppendRune writes r as it appears inside a canonical string and
// reports whether that needed a backslash escape (RFC 8785 section 3.2.2.2).
func jcsAppendRune(out *[]byte, r rune) bool {
	b := *out
	escaped := true
	switch r {
	case '"', '\\':
		b = append(b, '\\', byte(r))
	case '\b':
		b = append(b, '\\', 'b')
	case '\f':
		b = append(b, '\\', 'f')
	case '\n':
		b = append(b, '\\', 'n')
	case '\r':
		b = append(b, '\\', 'r')
	case '\t':
		b = append(b, '\\', 't')
	default:
		if r < 0x20 {
			b = append(b, '\\', 'u', '0', '0', jcsHexDigits[r>>4], jcsHexDigits[r&0xf])
		} else {
			b = utf8.AppendRune(b, r)
			escaped = false
		}
	}
	*out = b
	return escaped
}

// number parses a number and writes its ECMAScript serialization.
func (p *jcsParser) number() error {
	in := p.in
	start := p.pos
	i := start
	if in[i] == '-' {
		i++
		if i >= len(in) {
			return p.eof("in number")
		}
		if in[i] == 'I' {
			return p.fail(start, "NaN and Infinity are not valid JSON numbers")
		}
	}
	intStart := i
	switch {
	case i < len(in) && in[i] == '0':
		i++
		if i < len(in) && jcsIsDigit(in[i]) {
			return p.fail(intStart, "leading zero in number")
		}
	case i < len(in) && jcsIsDigit(in[i]):
		for i < len(in) && jcsIsDigit(in[i]) {
			i++
		}
	default:
		return p.badChar(i, "digit in number")
	}
	intDigits := i - intStart
	plain := true
	if i < len(in) && in[i] == '.' {
		plain = false
		i++
		if i >= len(in) {
			return p.eof("in number fraction")
		}
		if !jcsIsDigit(in[i]) {
			return p.badChar(i, "digit after decimal point")
		}
		for i < len(in) && jcsIsDigit(in[i]) {
			i++
		}
	}
	if i < len(in) && (in[i] == 'e' || in[i] == 'E') {
		plain = false
		i++
		if i < len(in) && (in[i] == '+' || in[i] == '-') {
			i++
		}
		if i >= len(in) {
			return p.eof("in number exponent")
		}
		if !jcsIsDigit(in[i]) {
			return p.badChar(i, "digit in exponent")
		}
		for i < len(in) && jcsIsDigit(in[i]) {
			i++
		}
	}
	p.pos = i
	lit := in[start:i]
	// Integers below 10^15 are exact doubles whose ECMAScript form is their
	// own decimal spelling, so skip the float round trip for them.
	if plain && intDigits <= 15 {
		if intDigits == 1 && in[intStart] == '0' {
			p.out = append(p.out, '0') // "-0" is 0
		} else {
			p.out = append(p.out, lit...)
		}
		return nil
	}
	// The string does not outlive ParseFloat (its error, which may retain
	// it, is dropped), and in is not modified meanwhile.
	f, err := strconv.ParseFloat(unsafe.String(&lit[0], len(lit)), 64)
	if err != nil {
		// Syntax was checked above, so this is ErrRange: overflow to ±Inf.
		// (Underflow silently rounds to zero, as IEEE-754 parsing does.)
		return p.fail(start, "number %.40s magnitude overflows float64", lit)
	}
	n := len(p.out)
	p.out = jcsAppendNumber(p.out, f)
	if p.exact && !sameDecimal(lit, p.out[n:]) {
		return p.fail(start, "number %.40s does not survive as a double: its canonical form %s has another value", lit, p.out[n:])
	}
	return nil
}

// sameDecimal reports whether two JSON number literals denote the same decimal
// value (so 2.50 and 2.5, or 1E2 and 100, do; 0.10000000000000000555 and 0.1 do not).
func sameDecimal(a, b []byte) bool {
	na, da, ea := decimalOf(a)
	nb, db, eb := decimalOf(b)
	if len(da) == 0 || len(db) == 0 {
		return len(da) == len(db) // zero, whatever its sign
	}
	return na == nb && ea == eb && bytes.Equal(da, db)
}

// decimalOf reads a JSON number literal as ±0.d1d2…dk × 10^e with d1 and dk not
// zero; zero has no digits. Exponents are clamped to ±2^40, far beyond any that
// parse to a finite nonzero double, so clamping never makes two values equal.
func decimalOf(lit []byte) (neg bool, digits []byte, exp int) {
	i := 0
	if i < len(lit) && lit[i] == '-' {
		neg = true
		i++
	}
	var ds []byte
	point := -1
	for ; i < len(lit) && (jcsIsDigit(lit[i]) || lit[i] == '.'); i++ {
		if lit[i] == '.' {
			point = len(ds)
			continue
		}
		ds = append(ds, lit[i])
	}
	if point < 0 {
		point = len(ds)
	}
	e := 0
	if i < len(lit) && (lit[i] == 'e' || lit[i] == 'E') {
		i++
		eneg := false
		if i < len(lit) && (lit[i] == '+' || lit[i] == '-') {
			eneg = lit[i] == '-'
			i++
		}
		for ; i < len(lit); i++ {
			if e < 1<<40 {
				e = e*10 + int(lit[i]-'0')
			}
		}
		if eneg {
			e = -e
		}
	}
	lead := 0
	for lead < len(ds) && ds[lead] == '0' {
		lead++
	}
	ds = bytes.TrimRight(ds[lead:], "0")
	return neg, ds, point - lead + e
}

// jcsAppendNumber appends the ECMAScript Number.prototype.toString form of
// the finite double f (ECMA-262 Number::toString, RFC 8785 section
// 3.2.2.3). strconv's shortest round-trip digits are the digits ECMAScript
// requires; only the layout differs.
func jcsAppendNumber(dst []byte, f float64) []byte {
	if f == 0 {
		return append(dst, '0') // also -0
	}
	var buf [32]byte
	b := strconv.AppendFloat(buf[:0], f, 'e', -1, 64) // [-]d[.ddd]e±dd[d]
	if b[0] == '-' {
		dst = append(dst, '-')
		b = b[1:]
	}
	var digits [20]byte
	k := 0
	j := 0
	for ; b[j] != 'e'; j++ {
		if b[j] != '.' {
			digits[k] = b[j]
			k++
		}
	}
	exp := 0
	for _, c := range b[j+2:] {
		exp = exp*10 + int(c-'0')
	}
	if b[j+1] == '-' {
		exp = -exp
	}
	// ECMAScript's n: the value is 0.d1d2...dk × 10^n.
	n := exp + 1
	switch {
	case k <= n && n <= 21:
		dst = append(dst, digits[:k]...)
		for ; k < n; k++ {
			dst = append(dst, '0')
		}
	case 0 < n && n <= 21:
		dst = append(dst, digits[:n]...)
		dst = append(dst, '.')
		dst = append(dst, digits[n:k]...)
	case -6 < n && n <= 0:
		dst = append(dst, '0', '.')
		for ; n < 0; n++ {
			dst = append(dst, '0')
		}
		dst = append(dst, digits[:k]...)
	default:
		dst = append(dst, digits[0])
		if k > 1 {
			dst = append(dst, '.')
			dst = append(dst, digits[1:k]...)
		}
		dst = append(dst, 'e')
		if exp >= 0 {
			dst = append(dst, '+')
		}
		dst = strconv.AppendInt(dst, int64(exp), 10)
	}
	return dst
}

// AppendString appends s to dst as an RFC 8785 string (quotes included). It refuses
// what the parser refuses, so that every string it writes reads back unchanged:
// invalid UTF-8 and Unicode noncharacters (I-JSON, RFC 7493 section 2.1).
func AppendString(dst []byte, s string) ([]byte, error) {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			// A run of printable ASCII that needs no escape is copied at once: hashes,
			// ids and most text are nothing else.
			j := i
			for j < len(s) && s[j] >= 0x20 && s[j] < utf8.RuneSelf && s[j] != '"' && s[j] != '\\' {
				j++
			}
			if j > i {
				dst = append(dst, s[i:j]...)
				i = j
				continue
			}
			jcsAppendRune(&dst, rune(c))
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return dst, fmt.Errorf("invalid UTF-8 at byte offset %d", i)
		}
		if jcsNoncharacter(r) {
			return dst, fmt.Errorf("Unicode noncharacter U+%04X at byte offset %d", r, i)
		}
		dst = append(dst, s[i:i+size]...)
		i += size
	}
	return append(dst, '"'), nil
}
