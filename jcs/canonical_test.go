package jcs

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

// RFC 8785 section 3.2.2: the sample input and its canonical form.
const (
	jcsRFCSampleIn = `{
  "numbers": [333333333.33333329, 1E30, 4.50,
              2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}`
	jcsRFCSampleOut = `{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`
)

// RFC 8785 section 3.2.3: the property sorting example.
const (
	jcsRFCSortIn = `{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\ud83d\ude00": "Emoji: Grinning Face",
  "\u0080": "Control",
  "\u00f6": "Latin Small Letter O With Diaeresis"
}`
	jcsRFCSortOut = "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u0080\":\"Control\"," +
		"\"\u00f6\":\"Latin Small Letter O With Diaeresis\",\"\u20ac\":\"Euro Sign\"," +
		"\"\U0001F600\":\"Emoji: Grinning Face\",\"\ufb33\":\"Hebrew Letter Dalet With Dagesh\"}"
)

// jcsBenchRecord is a typical ~400-byte record: 12 members, some nested,
// not in canonical order and with insignificant whitespace.
const jcsBenchRecord = `{
  "version": 3,
  "kind": "artifact.publish",
  "id": "rec-0001-3f9a2c7e",
  "timestamp": "2024-05-17T12:34:56.789Z",
  "subject": {"name": "github.com/example/project", "digest": {"sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}},
  "size": 1048576,
  "score": 0.875,
  "tags": ["release", "signed", "linux/amd64"],
  "builder": {"id": "https://ci.example.org/runner/42", "hermetic": true},
  "parent": null,
  "attempts": 1,
  "note": "caf\u00e9 \u2603 ok"
}`

type jcsCase struct {
	name string
	in   string
	want string
}

var jcsValidCases = []jcsCase{
	{"rfc8785/sample", jcsRFCSampleIn, jcsRFCSampleOut},
	{"rfc8785/sorting", jcsRFCSortIn, jcsRFCSortOut},

	// Structure and whitespace.
	{"empty object", `{}`, `{}`},
	{"empty array", `[]`, `[]`},
	{"empty object ws", " { \t\r\n} ", `{}`},
	{"empty array ws", "[\n]", `[]`},
	{"nested empties", `[{},[],{"a":[]}]`, `[{},[],{"a":[]}]`},
	{"ws everywhere", " \t\r\n{ \"b\" : [ 1 , 2 ] ,\n\"a\"\t:\r{ } } \n", `{"a":{},"b":[1,2]}`},
	{"array order kept", `[3,1,2,"b","a"]`, `[3,1,2,"b","a"]`},

	// Literals and top-level scalars.
	{"true", `true`, `true`},
	{"false", ` false`, `false`},
	{"null", `null `, `null`},
	{"top string", `"x"`, `"x"`},
	{"literals in array", `[true,false,null]`, `[true,false,null]`},

	// Numbers.
	{"zero", `0`, `0`},
	{"minus zero", `-0`, `0`},
	{"minus zero frac", `-0.0`, `0`},
	{"minus zero exp", `-0e5`, `0`},
	{"zero exp", `0E-10`, `0`},
	{"int", `42`, `42`},
	{"neg int", `-42`, `-42`},
	{"15 digits", `123456789012345`, `123456789012345`},
	{"16 digits", `1234567890123456`, `1234567890123456`},
	{"19 digits", `1234567890123456789`, `1234567890123456800`},
	{"2^53+1", `9007199254740993`, `9007199254740992`},
	{"-2^53-1", `-9007199254740993`, `-9007199254740992`},
	{"exp int", `1E2`, `100`},
	{"exp plus", `1e+2`, `100`},
	{"exp to one", `100e-2`, `1`},
	{"trailing zero frac", `1.0`, `1`},
	{"4.50", `4.50`, `4.5`},
	{"2e-3", `2e-3`, `0.002`},
	{"1E30", `1E30`, `1e+30`},
	{"neg frac", `-1.5`, `-1.5`},
	{"0.1", `0.1`, `0.1`},
	{"0.1+0.2", `0.30000000000000004`, `0.30000000000000004`},
	{"1e20", `1e20`, `100000000000000000000`},
	{"1e21", `1e21`, `1e+21`},
	{"1e-6", `1e-6`, `0.000001`},
	{"1e-7", `1e-7`, `1e-7`},
	{"1.5e-7", `1.5e-7`, `1.5e-7`},
	{"1.5e-6", `0.0000015`, `0.0000015`},
	{"-1e-7", `-0.0000001`, `-1e-7`},
	{"underflow", `1e-400`, `0`},
	{"neg underflow", `-1e-400`, `0`},
	{"long mantissa", `1.00000000000000000000000000000000001`, `1`},
	{"long int", `100000000000000000000000000000000000000`, `1e+38`},
	{"max double text", `1.7976931348623157e308`, `1.7976931348623157e+308`},
	{"max double rounds down", `1.7976931348623158e308`, `1.7976931348623157e+308`},
	{"min subnormal", `5e-324`, `5e-324`},
	{"min subnormal rounds up", `2.4703282292062328e-324`, `5e-324`},
	{"numbers in object", `{"n":[0.5,-0,1e1]}`, `{"n":[0.5,0,10]}`},

	// Strings.
	{"escape A", `"\u0041"`, `"A"`},
	{"solidus", `"\/"`, `"/"`},
	{"literal solidus", `"a/b"`, `"a/b"`},
	{"html chars", `"<>&'"`, `"<>&'"`},
	{"short escapes", `"\b\f\n\r\t\"\\"`, `"\b\f\n\r\t\"\\"`},
	{"u escapes to short", `"\u0008\u000C\u000a\u000D\u0009\u0022\u005C"`, `"\b\f\n\r\t\"\\"`},
	{"control lowercase hex", `"\u001F\u001f\u000B\u0000\u0001"`, `"\u001f\u001f\u000b\u0000\u0001"`},
	{"DEL literal", `"\u007f"`, "\"\x7f\""},
	{"line separators", `"\u2028\u2029"`, "\"\u2028\u2029\""},
	{"latin1", `"\u00e9\u00E9é"`, `"ééé"`},
	{"surrogate pair", `"\ud83d\ude00"`, "\"\U0001F600\""},
	{"surrogate pair upper", `"\uD83D\uDE00"`, "\"\U0001F600\""},
	{"literal emoji", "\"\U0001F600\"", "\"\U0001F600\""},
	{"replacement char", `"\ufffd` + "\uFFFD\"", "\"\uFFFD\uFFFD\""},
	{"max code point", `"\udbff\udffd"`, "\"\U0010FFFD\""},
	{"empty string", `""`, `""`},

	// Member ordering.
	{"sort simple", `{"b":1,"a":2}`, `{"a":2,"b":1}`},
	{"sort prefix", `{"ab":1,"a":2,"":3}`, `{"":3,"a":2,"ab":1}`},
	{"sort nested", `{"b":{"d":1,"c":2},"a":[{"z":1,"y":2}]}`, `{"a":[{"y":2,"z":1}],"b":{"c":2,"d":1}}`},
	{"sort escaped names", `{"a":1,"\n":2,"\"":3,"\\":4,"\u0000":5}`, `{"\u0000":5,"\n":2,"\"":3,"\\":4,"a":1}`},
	{"sort escaped vs plain", `{"\u0041":1,"B":2,"\u0040":3}`, `{"@":3,"A":1,"B":2}`},
	{"sort utf16 not code point", `{"\ue000":1,"\ud800\udc00":2}`, "{\"\U00010000\":2,\"\ue000\":1}"},
	{"sort utf16 fffd vs emoji", "{\"\uFFFD\":1,\"\U0001F600\":2,\"\u00ff\":3}", "{\"\u00ff\":3,\"\U0001F600\":2,\"\uFFFD\":1}"},
	{"sort reverse many", `{"l":1,"k":1,"j":1,"i":1,"h":1,"g":1,"f":1,"e":1,"d":1,"c":1,"b":1,"a":1,"m":{"z":0,"y":0}}`,
		`{"a":1,"b":1,"c":1,"d":1,"e":1,"f":1,"g":1,"h":1,"i":1,"j":1,"k":1,"l":1,"m":{"y":0,"z":0}}`},
	{"same names in sibling objects", `{"x":{"a":1},"w":{"a":2}}`, `{"w":{"a":2},"x":{"a":1}}`},
	{"same name at two levels", `{"a":{"a":{"a":1}}}`, `{"a":{"a":{"a":1}}}`},
	{"escaped name kept escaped", `{"\u000b":1," ":2}`, `{"\u000b":1," ":2}`},
	{"sort mixed escaped names", `{"a\tb":1,"a b":2,"a\u0001z":3,"a\bc":4,"a\fc":5,"a":6}`, `{"a":6,"a\u0001z":3,"a\bc":4,"a\tb":1,"a\fc":5,"a b":2}`},

	{"depth 64", strings.Repeat("[", 64) + strings.Repeat("]", 64), strings.Repeat("[", 64) + strings.Repeat("]", 64)},
	{"depth 64 objects", strings.Repeat(`{"a":`, 63) + `[]` + strings.Repeat("}", 63), strings.Repeat(`{"a":`, 63) + `[]` + strings.Repeat("}", 63)},
	{"bench record", jcsBenchRecord, `{"attempts":1,"builder":{"hermetic":true,"id":"https://ci.example.org/runner/42"},"id":"rec-0001-3f9a2c7e","kind":"artifact.publish","note":"café ☃ ok","parent":null,"score":0.875,"size":1048576,"subject":{"digest":{"sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},"name":"github.com/example/project"},"tags":["release","signed","linux/amd64"],"timestamp":"2024-05-17T12:34:56.789Z","version":3}`},
}

type jcsErrCase struct {
	name   string
	in     string
	reason string // substring the error must contain
	off    int    // expected byte offset
}

var jcsErrCases = []jcsErrCase{
	{"empty input", ``, "unexpected end of input", 0},
	{"only whitespace", " \n", "unexpected end of input", 2},

	// Encoding.
	{"invalid utf8 in string", "\"a\xffb\"", "invalid UTF-8", 2},
	{"invalid utf8 top level", "\xff", "invalid UTF-8", 0},
	{"overlong utf8", "\"\xc0\xaf\"", "invalid UTF-8", 1},
	{"utf8 encoded surrogate", "\"\xed\xa0\x80\"", "invalid UTF-8", 1},
	{"truncated utf8", "\"\xe2\x82\"", "invalid UTF-8", 1},
	{"utf8 beyond 10ffff", "\"\xf4\x90\x80\x80\"", "invalid UTF-8", 1},
	{"invalid utf8 in name", "{\"\xfe\":1}", "invalid UTF-8", 2},
	{"bom", "\ufeff{}", "invalid character", 0},
	{"literal noncharacter", "\"\uffff\"", "noncharacter U+FFFF", 1},
	{"escaped noncharacter", `"\ufdd0"`, "noncharacter U+FDD0", 1},
	{"escaped supplementary noncharacter", `"\ud83f\udffe"`, "noncharacter U+1FFFE", 1},

	// Surrogates.
	{"lone high surrogate", `"\ud800"`, "lone high surrogate", 1},
	{"lone high surrogate then text", `"\ud800abcdef"`, "lone high surrogate", 1},
	{"high then short escape", `"\ud800\n"`, "lone high surrogate", 1},
	{"high then high", `"\ud800\ud800"`, "not followed by a low surrogate", 1},
	{"high then bmp", `"\ud83d\u0041"`, "not followed by a low surrogate", 1},
	{"lone low surrogate", `"x\udc00"`, "lone low surrogate", 2},
	{"reversed pair", `"\ude00\ud83d"`, "lone low surrogate", 1},
	{"high at end", `"\ud800`, "unexpected end of input", 7},

	// Duplicates.
	{"duplicate adjacent", `{"a":1,"a":2}`, `duplicate object member name "a"`, 7},
	{"duplicate non-adjacent", `{"b":1,"a":2,"b":3}`, `duplicate object member name "b"`, 13},
	{"duplicate unsorted first", `{"c":1,"c":2,"a":3}`, `duplicate object member name "c"`, 7},
	{"duplicate after unescape", `{"a":1,"\u0061":2}`, `duplicate object member name "a"`, 7},
	{"duplicate solidus", `{"/":1,"\/":2}`, `duplicate object member name "/"`, 7},
	{"duplicate nested", `{"x":{"k":1,"j":0,"k":2}}`, `duplicate object member name "k"`, 18},
	{"duplicate three", `{"b":1,"c":1,"b":2,"a":0,"b":3}`, `duplicate object member name "b"`, 13},
	{"duplicate control", `{"\n":1,"\u000a":2}`, `duplicate object member name "\n"`, 8},

	// Trailing data.
	{"two objects", `{} {}`, "trailing data", 3},
	{"two numbers", `1 2`, "trailing data", 2},
	{"garbage after array", `[]x`, "trailing data", 2},
	{"two strings", `"a""b"`, "trailing data", 3},
	{"hex", `0x10`, "trailing data", 1},
	{"nul after", "{}\x00", "trailing data", 2},

	// Depth.
	{"depth 65 arrays", strings.Repeat("[", 65) + strings.Repeat("]", 65), "nesting depth exceeds MaxDepth (64)", 64},
	{"depth 65 objects", strings.Repeat(`{"a":`, 64) + `[]` + strings.Repeat("}", 64), "nesting depth exceeds MaxDepth (64)", 64 * 5},
	{"depth 65 only objects", strings.Repeat(`{"a":`, 65) + `1` + strings.Repeat("}", 65), "nesting depth exceeds MaxDepth (64)", 64 * 5},
	{"depth bomb", strings.Repeat("[", 100000), "nesting depth exceeds", 64},

	// Numbers.
	{"leading zero", `01`, "leading zero", 0},
	{"leading zeros", `007`, "leading zero", 0},
	{"neg leading zero", `-01`, "leading zero", 1},
	{"leading zero in array", `[1,00]`, "leading zero", 3},
	{"NaN", `NaN`, "NaN and Infinity", 0},
	{"Infinity", `[Infinity]`, "NaN and Infinity", 1},
	{"-Infinity", `-Infinity`, "NaN and Infinity", 0},
	{"nan lowercase", `nan`, "invalid literal", 0},
	{"overflow", `1e309`, "overflows float64", 0},
	{"neg overflow", `[-1e309]`, "overflows float64", 1},
	{"overflow just", `1.7976931348623159e308`, "overflows float64", 0},
	{"overflow digits", strings.Repeat("9", 400), "overflows float64", 0},
	{"overflow huge exp", `1e99999999999999999999`, "overflows float64", 0},
	{"plus sign", `+1`, "invalid character '+'", 0},
	{"leading dot", `.5`, "invalid character '.'", 0},
	{"trailing dot", `1.`, "unexpected end of input", 2},
	{"dot exp", `1.e5`, "digit after decimal point", 2},
	{"bare exp", `1e`, "unexpected end of input", 2},
	{"exp sign only", `[1e+]`, "digit in exponent", 4},
	{"lone minus", `-`, "unexpected end of input", 1},
	{"double minus", `--1`, "digit in number", 1},
	{"minus space", `- 1`, "digit in number", 1},

	// Strings and escapes.
	{"bad escape x", `"\x41"`, `invalid escape sequence \x`, 1},
	{"bad escape quote", `"\'"`, `invalid escape sequence \'`, 1},
	{"bad escape U", `"\U0041"`, `invalid escape sequence \U`, 1},
	{"short u escape", `"\u12"`, "invalid hex digit", 5},
	{"bad hex", `"\u12g4"`, "invalid hex digit", 5},
	{"bad hex in low surrogate", `"\ud800\udcz0"`, "invalid hex digit", 11},
	{"eof in u escape", `"\u12`, "unexpected end of input in \\u escape", 5},
	{"escape of control byte", "\"\\\x01\"", "invalid escape sequence (backslash followed by byte 0x01)", 1},
	{"escape of non-ascii", "\"\\\u00e9\"", "invalid escape sequence (backslash followed by byte 0xc3)", 1},
	{"escape at eof", `"\`, "unexpected end of input", 2},
	{"raw tab", "\"a\tb\"", "control character 0x09", 2},
	{"raw newline", "\"a\nb\"", "control character 0x0a", 2},
	{"raw nul", "\"\x00\"", "control character 0x00", 1},
	{"raw 0x1f", "[\"\x1f\"]", "control character 0x1f", 2},
	{"unterminated string", `"abc`, "unexpected end of input in string", 4},
	{"single quotes", `'a'`, "invalid character '\\''", 0},

	// Structure.
	{"missing colon", `{"a" 1}`, "expected ':'", 5},
	{"missing comma", `[1 2]`, "expected ',' or ']'", 3},
	{"missing member comma", `{"a":1 "b":2}`, "expected ',' or '}'", 7},
	{"trailing comma array", `[1,]`, "expected a JSON value", 3},
	{"trailing comma object", `{"a":1,}`, "object member name", 7},
	{"unquoted name", `{a:1}`, "object member name", 1},
	{"number name", `{1:1}`, "object member name", 1},
	{"unterminated array", `[1`, "unexpected end of input in array", 2},
	{"eof after comma in object", `{"a":1,`, "unexpected end of input in object", 7},
	{"eof after name", `{"a"`, "unexpected end of input after object member name", 4},
	{"eof after colon", `{"a":`, "unexpected end of input where a value was expected", 5},
	{"eof after comma in array", `[1,`, "unexpected end of input where a value was expected", 3},
	{"unterminated object", `{"a":1`, "unexpected end of input in object", 6},
	{"object no value", `{"a":}`, "expected a JSON value", 5},
	{"truncated true", `tru`, "unexpected end of input in literal true", 3},
	{"bad literal", `trUe`, "invalid literal, expected true", 0},
	{"nul", `nul`, "unexpected end of input in literal null", 3},
	{"comment", `/*x*/1`, "invalid character '/'", 0},
	{"form feed ws", "[1,\f2]", "invalid character '\\f'", 3},
	{"vertical tab ws", "\v1", "invalid character '\\v'", 0},
	{"nbsp ws", "\u00a01", "invalid character '\\u00a0'", 0},
	{"close without open", `]`, "expected a JSON value", 0},
}

// jcsAppendixB lists RFC 8785 Appendix B: IEEE-754 bit patterns and their
// ECMAScript serialization (NaN and Infinity cannot appear in JSON text;
// they are covered by jcsErrCases).
var jcsAppendixB = []struct {
	bits uint64
	want string
}{
	{0x0000000000000000, "0"},
	{0x8000000000000000, "0"},
	{0x0000000000000001, "5e-324"},
	{0x8000000000000001, "-5e-324"},
	{0x7fefffffffffffff, "1.7976931348623157e+308"},
	{0xffefffffffffffff, "-1.7976931348623157e+308"},
	{0x4340000000000000, "9007199254740992"},
	{0xc340000000000000, "-9007199254740992"},
	{0x4430000000000000, "295147905179352830000"},
	{0x44b52d02c7e14af5, "9.999999999999997e+22"},
	{0x44b52d02c7e14af6, "1e+23"},
	{0x44b52d02c7e14af7, "1.0000000000000001e+23"},
	{0x444b1ae4d6e2ef4e, "999999999999999700000"},
	{0x444b1ae4d6e2ef4f, "999999999999999900000"},
	{0x444b1ae4d6e2ef50, "1e+21"},
	{0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"},
	{0x3eb0c6f7a0b5ed8d, "0.000001"},
	{0x41b3de4355555553, "333333333.3333332"},
	{0x41b3de4355555554, "333333333.33333325"},
	{0x41b3de4355555555, "333333333.3333333"},
	{0x41b3de4355555556, "333333333.3333334"},
	{0x41b3de4355555557, "333333333.33333343"},
	{0xbecbf647612f3696, "-0.0000033333333333333333"},
	{0x43143ff3c1cb0959, "1424953923781206.2"},
}

func TestCanonicalizeCases(t *testing.T) {
	for _, tc := range jcsValidCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Canonicalize([]byte(tc.in))
			if err != nil {
				t.Fatalf("Canonicalize(%q): %v", tc.in, err)
			}
			if string(got) != tc.want {
				t.Fatalf("Canonicalize(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
			jcsCheckProperties(t, []byte(tc.in), got)
		})
	}
}

func TestCanonicalizeErrors(t *testing.T) {
	for _, tc := range jcsErrCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Canonicalize([]byte(tc.in))
			if err == nil {
				t.Fatalf("Canonicalize(%.80q) = %q, want error containing %q", tc.in, got, tc.reason)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("Canonicalize(%.80q) error %q does not mention %q", tc.in, err, tc.reason)
			}
			var ce *jcsError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not *jcsError", err)
			}
			if ce.Offset != tc.off {
				t.Errorf("Canonicalize(%.80q) error offset = %d, want %d (%v)", tc.in, ce.Offset, tc.off, err)
			}
			if want := "byte offset " + strconv.Itoa(tc.off); !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %q", err, want)
			}
			if IsCanonical([]byte(tc.in)) {
				t.Errorf("IsCanonical(%.80q) = true for invalid input", tc.in)
			}
			if tc.in != "" && json.Valid([]byte(tc.in)) && !jcsStricterThanEncodingJSON(tc.in) {
				t.Errorf("encoding/json accepts %.80q; the case should say why it is rejected", tc.in)
			}
		})
	}
}

// jcsStricterThanEncodingJSON lists the rejections that encoding/json does
// not make: I-JSON constraints rather than JSON syntax.
func jcsStricterThanEncodingJSON(in string) bool {
	for _, tc := range jcsErrCases {
		if tc.in == in {
			for _, r := range []string{"surrogate", "duplicate", "nesting depth", "overflows", "noncharacter", "UTF-8"} {
				if strings.Contains(tc.reason, r) {
					return true
				}
			}
		}
	}
	return false
}

func TestCanonicalizeAppendixB(t *testing.T) {
	for _, tc := range jcsAppendixB {
		f := math.Float64frombits(tc.bits)
		t.Run(strconv.FormatUint(tc.bits, 16), func(t *testing.T) {
			if got := string(jcsAppendNumber(nil, f)); got != tc.want {
				t.Errorf("jcsAppendNumber(%016x) = %q, want %q", tc.bits, got, tc.want)
			}
			// The same value through the parser, spelled several ways.
			for _, fmtc := range []byte{'g', 'e', 'E'} {
				in := strconv.FormatFloat(f, fmtc, -1, 64)
				got, err := Canonicalize([]byte(in))
				if err != nil {
					t.Fatalf("Canonicalize(%q): %v", in, err)
				}
				if string(got) != tc.want {
					t.Errorf("Canonicalize(%q) = %q, want %q", in, got, tc.want)
				}
			}
			if got := jcsRefNumber(f); got != tc.want {
				t.Errorf("test oracle jcsRefNumber(%016x) = %q, want %q", tc.bits, got, tc.want)
			}
		})
	}
}

// TestCanonicalizeVectors runs the file-based vectors in testdata:
// NAME.in holds input, NAME.out its canonical form (a final newline in the
// .out file is ignored; canonical text never ends in one).
func TestCanonicalizeVectors(t *testing.T) {
	ins, err := filepath.Glob(filepath.Join("testdata", "*.in"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) == 0 {
		t.Fatal("no vectors in testdata")
	}
	for _, inPath := range ins {
		name := strings.TrimSuffix(filepath.Base(inPath), ".in")
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile(inPath)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(strings.TrimSuffix(inPath, ".in") + ".out")
			if err != nil {
				t.Fatal(err)
			}
			want = bytes.TrimSuffix(want, []byte("\n"))
			got, err := Canonicalize(in)
			if err != nil {
				t.Fatalf("Canonicalize: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("got  %s\nwant %s", got, want)
			}
			jcsCheckProperties(t, in, got)
		})
	}
}

// jcsCheckProperties checks what must hold for every accepted input
// and its output: idempotence, IsCanonical, validity, equivalence with
// encoding/json decoding, and agreement with the reference canonicalizer.
func jcsCheckProperties(t *testing.T, in, out []byte) {
	t.Helper()
	again, err := Canonicalize(out)
	if err != nil {
		t.Fatalf("output %q not accepted: %v", out, err)
	}
	if !bytes.Equal(again, out) {
		t.Fatalf("not idempotent:\n first %q\nsecond %q", out, again)
	}
	if !IsCanonical(out) {
		t.Fatalf("IsCanonical(%q) = false for output", out)
	}
	if IsCanonical(in) != bytes.Equal(in, out) {
		t.Fatalf("IsCanonical(%q) = %v, but input==output is %v", in, IsCanonical(in), bytes.Equal(in, out))
	}
	if !json.Valid(out) {
		t.Fatalf("encoding/json rejects output %q", out)
	}
	if !json.Valid(in) {
		t.Fatalf("accepted input %q that encoding/json rejects", in)
	}
	var vin, vout any
	if err := json.Unmarshal(in, &vin); err != nil {
		t.Fatalf("encoding/json cannot decode input %q: %v", in, err)
	}
	if err := json.Unmarshal(out, &vout); err != nil {
		t.Fatalf("encoding/json cannot decode output %q: %v", out, err)
	}
	if !reflect.DeepEqual(vin, vout) {
		t.Fatalf("decoded values differ:\n  in %#v\n out %#v", vin, vout)
	}
	ref, err := jcsRefCanonical(in)
	if err != nil {
		t.Fatalf("reference canonicalizer: %v", err)
	}
	if !bytes.Equal(ref, out) {
		t.Fatalf("differs from reference canonicalizer:\n got %q\n ref %q", out, ref)
	}
}

func TestAppendCanonical(t *testing.T) {
	prefix := []byte("prefix:")
	dst := append(make([]byte, 0, 64), prefix...)
	got, err := AppendCanonical(dst, []byte(`{"b":1,"a":[true]}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := `prefix:{"a":[true],"b":1}`; string(got) != want {
		t.Fatalf("AppendCanonical = %q, want %q", got, want)
	}
	got, err = AppendCanonical(dst, []byte(`{"a":1,"a":2}`))
	if err == nil {
		t.Fatal("AppendCanonical accepted duplicate names")
	}
	if string(got) != string(prefix) {
		t.Fatalf("AppendCanonical on error returned %q, want dst unchanged %q", got, prefix)
	}
}

func TestCanonicalizeZeroAllocs(t *testing.T) {
	if jcsRaceEnabled() {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	in := []byte(jcsBenchRecord)
	buf := make([]byte, 0, 1024)
	allocs := testing.AllocsPerRun(200, func() {
		var err error
		if buf, err = AppendCanonical(buf[:0], in); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("AppendCanonical allocates %.1f times per record, want 0", allocs)
	}
}

func jcsRaceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" && s.Value == "true" {
			return true
		}
	}
	return false
}

func TestIsCanonical(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{`{}`, true},
		{`{"a":1,"b":[1,2]}`, true},
		{jcsRFCSampleOut, true},
		{jcsRFCSortOut, true},
		{`{"b":1,"a":2}`, false},
		{`{"a":1 }`, false},
		{` {}`, false},
		{"{}\n", false},
		{`1.0`, false},
		{`-0`, false},
		{`1e2`, false},
		{`"\u0041"`, false},
		{`"\/"`, false},
		{`"\u001F"`, false},
		{`"\u001f"`, true},
		{`"\u000a"`, false},
		{`"\n"`, true},
		{"\"\u2028\"", true},
		{`"\u2028"`, false},
		{``, false},
		{`{"a":1,"a":1}`, false},
	} {
		if got := IsCanonical([]byte(tc.in)); got != tc.want {
			t.Errorf("IsCanonical(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// TestCanonicalNumberOracle compares the number formatter with an
// independent construction from strconv's fixed and exponent formats over
// random doubles and powers of ten around the format boundaries.
func TestCanonicalNumberOracle(t *testing.T) {
	r := rand.New(rand.NewPCG(8785, 1))
	check := func(f float64) {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return
		}
		got := string(jcsAppendNumber(nil, f))
		if want := jcsRefNumber(f); got != want {
			t.Fatalf("jcsAppendNumber(%v [%016x]) = %q, want %q", f, math.Float64bits(f), got, want)
		}
		back, err := strconv.ParseFloat(got, 64)
		if err != nil || back != f && !(f == 0 && back == 0) {
			t.Fatalf("%q does not round-trip to %v", got, f)
		}
	}
	for i := 0; i < 200000; i++ {
		check(math.Float64frombits(r.Uint64()))
	}
	for e := -330; e <= 310; e++ {
		p := math.Pow(10, float64(e))
		for _, f := range []float64{p, math.Nextafter(p, 0), math.Nextafter(p, math.Inf(1)), 1.5 * p, -p} {
			check(f)
		}
	}
	for i := int64(-1000); i <= 1000; i++ {
		check(float64(i))
		check(float64(i) / 7)
	}
}

// jcsRefNumber is the test oracle for ECMAScript number serialization,
// built differently from jcsAppendNumber: strconv's shortest fixed format
// in ECMAScript's fixed range, its exponent format elsewhere.
func jcsRefNumber(f float64) string {
	if f == 0 {
		return "0"
	}
	if a := math.Abs(f); a >= 1e-6 && a < 1e21 {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	s := strconv.FormatFloat(f, 'e', -1, 64)
	mant, exp, _ := strings.Cut(s, "e")
	e, err := strconv.Atoi(exp)
	if err != nil {
		panic(err)
	}
	if e >= 0 {
		return mant + "e+" + strconv.Itoa(e)
	}
	return mant + "e" + strconv.Itoa(e)
}

// jcsRefCanonical is a slow reference canonicalizer for inputs that
// Canonicalize accepts, built on encoding/json and unicode/utf16 rather
// than on this package's parser.
func jcsRefCanonical(in []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(in))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return jcsRefEncode(nil, v)
}

func jcsRefEncode(b []byte, v any) ([]byte, error) {
	var err error
	switch v := v.(type) {
	case nil:
		b = append(b, "null"...)
	case bool:
		b = strconv.AppendBool(b, v)
	case json.Number:
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			return nil, err
		}
		b = append(b, jcsRefNumber(f)...)
	case string:
		b = jcsRefString(b, v)
	case []any:
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = jcsRefEncode(b, e); err != nil {
				return nil, err
			}
		}
		b = append(b, ']')
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(x, y string) int {
			return slices.Compare(utf16.Encode([]rune(x)), utf16.Encode([]rune(y)))
		})
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = jcsRefString(b, k)
			b = append(b, ':')
			if b, err = jcsRefEncode(b, v[k]); err != nil {
				return nil, err
			}
		}
		b = append(b, '}')
	default:
		panic("unexpected type")
	}
	return b, nil
}

func jcsRefString(b []byte, s string) []byte {
	b = append(b, '"')
	for _, r := range s {
		switch {
		case r == '"':
			b = append(b, `\"`...)
		case r == '\\':
			b = append(b, `\\`...)
		case r == '\b':
			b = append(b, `\b`...)
		case r == '\f':
			b = append(b, `\f`...)
		case r == '\n':
			b = append(b, `\n`...)
		case r == '\r':
			b = append(b, `\r`...)
		case r == '\t':
			b = append(b, `\t`...)
		case r < 0x20:
			b = append(b, `\u00`...)
			b = append(b, "0123456789abcdef"[r>>4], "0123456789abcdef"[r&0xf])
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return append(b, '"')
}

func TestJCSCompareUTF16(t *testing.T) {
	strs := []string{"", "a", "ab", "b", "\x00", "\x7f", "\u0080", "\u00ff", "\u07ff", "\u0800",
		"\ud7ff", "\ue000", "\uf8ff", "\ufb33", "\ufffd", "\U00010000", "\U0001F600", "\U0010FFFD",
		"a\U00010000", "a\ue000", "\ue000a", "\U00010000a"}
	for _, x := range strs {
		for _, y := range strs {
			want := slices.Compare(utf16.Encode([]rune(x)), utf16.Encode([]rune(y)))
			if got := jcsCompareUTF16([]byte(x), []byte(y)); got != want {
				t.Errorf("jcsCompareUTF16(%q, %q) = %d, want %d", x, y, got, want)
			}
		}
	}
}

func jcsSeeds() []string {
	var seeds []string
	for _, tc := range jcsValidCases {
		seeds = append(seeds, tc.in, tc.want)
	}
	for _, tc := range jcsErrCases {
		if len(tc.in) < 1000 {
			seeds = append(seeds, tc.in)
		}
	}
	ins, _ := filepath.Glob(filepath.Join("testdata", "*.in"))
	for _, p := range ins {
		if b, err := os.ReadFile(p); err == nil {
			seeds = append(seeds, string(b))
		}
	}
	return seeds
}

func FuzzCanonicalize(f *testing.F) {
	for _, s := range jcsSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := Canonicalize(in)
		if err != nil {
			var ce *jcsError
			if !errors.As(err, &ce) || ce.Offset < 0 || ce.Offset > len(in) {
				t.Fatalf("bad error for %q: %v", in, err)
			}
			if IsCanonical(in) {
				t.Fatalf("IsCanonical(%q) = true for rejected input", in)
			}
			return
		}
		// (1) idempotent
		again, err := Canonicalize(out)
		if err != nil {
			t.Fatalf("output %q of %q rejected: %v", out, in, err)
		}
		if !bytes.Equal(again, out) {
			t.Fatalf("not idempotent for %q:\n first %q\nsecond %q", in, out, again)
		}
		// (2)
		if !IsCanonical(out) {
			t.Fatalf("IsCanonical(output %q) = false", out)
		}
		// (3)
		if !json.Valid(out) {
			t.Fatalf("encoding/json rejects output %q", out)
		}
		// (4)
		if IsCanonical(in) && !bytes.Equal(in, out) {
			t.Fatalf("canonical input %q changed to %q", in, out)
		}
		// Stronger: accepted input is valid JSON, decodes to the same value,
		// and matches the reference canonicalizer byte for byte.
		if !json.Valid(in) {
			t.Fatalf("accepted %q, which encoding/json rejects", in)
		}
		var vin, vout any
		if err := json.Unmarshal(in, &vin); err != nil {
			t.Fatalf("encoding/json cannot decode accepted %q: %v", in, err)
		}
		if err := json.Unmarshal(out, &vout); err != nil {
			t.Fatalf("encoding/json cannot decode output %q: %v", out, err)
		}
		if !reflect.DeepEqual(vin, vout) {
			t.Fatalf("values differ for %q:\n  in %#v\n out %#v", in, vin, vout)
		}
		ref, err := jcsRefCanonical(in)
		if err != nil {
			t.Fatalf("reference canonicalizer on %q: %v", in, err)
		}
		if !bytes.Equal(ref, out) {
			t.Fatalf("differs from reference for %q:\n got %q\n ref %q", in, out, ref)
		}
	})
}

func FuzzCanonicalNumber(f *testing.F) {
	for _, tc := range jcsAppendixB {
		f.Add(tc.bits)
	}
	f.Fuzz(func(t *testing.T, bits uint64) {
		v := math.Float64frombits(bits)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return
		}
		got := string(jcsAppendNumber(nil, v))
		if want := jcsRefNumber(v); got != want {
			t.Fatalf("jcsAppendNumber(%016x) = %q, want %q", bits, got, want)
		}
		// Through the parser, from a long non-canonical spelling.
		in := strconv.FormatFloat(v, 'e', 30, 64)
		out, err := Canonicalize([]byte(in))
		if err != nil {
			t.Fatalf("Canonicalize(%q): %v", in, err)
		}
		if string(out) != got {
			t.Fatalf("Canonicalize(%q) = %q, want %q", in, out, got)
		}
	})
}

func BenchmarkCanonicalize(b *testing.B) {
	canon, err := Canonicalize([]byte(jcsBenchRecord))
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		in   []byte
	}{
		{"record", []byte(jcsBenchRecord)},
		{"canonical", canon},
	} {
		b.Run(bc.name, func(b *testing.B) {
			buf := make([]byte, 0, 1024)
			b.SetBytes(int64(len(bc.in)))
			b.ReportAllocs()
			for b.Loop() {
				if buf, err = AppendCanonical(buf[:0], bc.in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("alloc", func(b *testing.B) {
		in := []byte(jcsBenchRecord)
		b.SetBytes(int64(len(in)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Canonicalize(in); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkIsCanonical(b *testing.B) {
	canon, err := Canonicalize([]byte(jcsBenchRecord))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(canon)))
	b.ReportAllocs()
	for b.Loop() {
		if !IsCanonical(canon) {
			b.Fatal("not canonical")
		}
	}
}
