package jcs

import (
	"encoding/json"
	"errors"
	"math/big"
	"reflect"
	"strings"
	"testing"
)

func nest(n int) string { return strings.Repeat(`{"a":`, n) + `1` + strings.Repeat(`}`, n) }

func TestAppendNestedCountsTheEnclosingDepth(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		depth   int
		wantErr bool
	}{
		{"64 levels at the top", nest(64), 0, false},
		{"65 levels at the top", nest(65), 0, true},
		{"63 levels inside one", nest(63), 1, false},
		{"64 levels inside one", nest(64), 1, true},
		{"62 levels inside two", nest(62), 2, false},
		{"63 levels inside two", nest(63), 2, true},
		{"a scalar adds no depth", `1`, MaxDepth, false},
		{"an empty array counts", `[]`, MaxDepth, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := AppendNested(nil, []byte(c.in), c.depth)
			if (err != nil) != c.wantErr {
				t.Fatalf("AppendNested(depth %d) error %v, want error %v", c.depth, err, c.wantErr)
			}
			if err != nil && !errors.Is(err, ErrDepth) {
				t.Fatalf("depth error %v does not match ErrDepth", err)
			}
			// The rule it enforces is the rule of the whole document: wrapping the value
			// in depth objects gives a document Canonicalize accepts exactly when
			// AppendNested accepted the value.
			doc := strings.Repeat(`{"w":`, c.depth) + c.in + strings.Repeat(`}`, c.depth)
			if _, derr := Canonicalize([]byte(doc)); (derr != nil) != c.wantErr {
				t.Fatalf("the enclosing document: error %v, AppendNested said %v", derr, err)
			}
		})
	}
}

func TestAppendNestedRefusesNumbersThatChange(t *testing.T) {
	for _, c := range []struct {
		in, out string
		ok      bool
	}{
		{`2.50`, `2.5`, true},
		{`1E2`, `100`, true},
		{`-0`, `0`, true},
		{`0.1`, `0.1`, true},
		{`1e-7`, `1e-7`, true},
		{`9007199254740993`, ``, false}, // 2^53+1 becomes 2^53
		{`12345678901234567890`, ``, false},
		{`0.10000000000000000555`, ``, false},
		{`1e-400`, ``, false}, // underflows to 0
		{`123456789012345678e3`, ``, false},
		{`100000000000000000000000`, `1e+23`, true},
		{`[1, 2.000, {"x": 5e-1}]`, `[1,2,{"x":0.5}]`, true},
	} {
		got, err := AppendNested(nil, []byte(c.in), 0)
		if c.ok {
			if err != nil || string(got) != c.out {
				t.Errorf("AppendNested(%s) = %s, %v; want %s", c.in, got, err, c.out)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "does not survive") {
			t.Errorf("AppendNested(%s) = %s, %v; want a refusal", c.in, got, err)
		}
		// Canonicalize itself keeps RFC 8785's rounding.
		if _, err := Canonicalize([]byte(c.in)); err != nil {
			t.Errorf("Canonicalize(%s): %v", c.in, err)
		}
	}
}

// ratOf is the oracle for sameDecimal: the exact rational value of a literal.
func ratOf(t testing.TB, lit string) *big.Rat {
	r, ok := new(big.Rat).SetString(lit)
	if !ok {
		t.Fatalf("big.Rat cannot read %q", lit)
	}
	return r
}

func TestSameDecimalAgreesWithExactArithmetic(t *testing.T) {
	lits := []string{"0", "-0", "0.0", "0e5", "1", "1.0", "10", "1e1", "1E+1", "100e-2", "0.01", "1e-2",
		"-1", "-1.0", "123.456", "123456e-3", "1.23456e2", "5e-324", "4.9406564584124654e-324",
		"0.000001", "1e-6", "1e-7", "0.0000001", "1e21", "1e+21", "1000000000000000000000", "12.3400"}
	for _, a := range lits {
		for _, b := range lits {
			want := ratOf(t, a).Cmp(ratOf(t, b)) == 0
			if got := sameDecimal([]byte(a), []byte(b)); got != want {
				t.Errorf("sameDecimal(%s, %s) = %v, want %v", a, b, got, want)
			}
		}
	}
}

// FuzzAppendNested: what AppendNested accepts is canonical, every number in it has the
// value of the number it came from (exact arithmetic), and the depth rule is that of
// the enclosing document.
func FuzzAppendNested(f *testing.F) {
	for _, s := range jcsSeeds() {
		f.Add(s, 0)
	}
	f.Add(`[1.5, 2.50, 1e400, 1e-400, 12345678901234567890]`, 1)
	f.Add(nest(63), 1)
	f.Fuzz(func(t *testing.T, in string, depth int) {
		if depth < 0 || depth > MaxDepth {
			return
		}
		out, err := AppendNested(nil, []byte(in), depth)
		doc := strings.Repeat("[", depth) + in + strings.Repeat("]", depth)
		_, derr := Canonicalize([]byte(doc))
		if err == nil && derr != nil {
			t.Fatalf("AppendNested accepted %q at depth %d, but the enclosing document fails: %v", in, depth, derr)
		}
		if err != nil {
			return
		}
		if !IsCanonical(out) {
			t.Fatalf("AppendNested(%q) = %q is not canonical", in, out)
		}
		if n := firstNumber(in); n != "" && len(n) < 400 && !strings.ContainsAny(n, "eE") {
			if m := firstNumber(string(out)); m != "" && ratOf(t, n).Cmp(ratOf(t, m)) != 0 {
				t.Fatalf("number %s became %s", n, m)
			}
		}
	})
}

// firstNumber returns the literal of in's value when it is a bare number.
func firstNumber(in string) string {
	s := strings.TrimSpace(in)
	if s == "" || !(s[0] == '-' || s[0] >= '0' && s[0] <= '9') {
		return ""
	}
	return s
}

func TestCheckCanonicalSaysWhy(t *testing.T) {
	for _, c := range []struct {
		in   string
		want error
		msg  string
	}{
		{`{"a":1}`, nil, ""},
		{`{"b":1,"a":2}`, ErrNotCanonical, "from byte offset 2"},
		{`{"a":1.0}`, ErrNotCanonical, "from byte offset 6"},
		{"[\"\ufdd0\"]", nil, "noncharacter U+FDD0"},
		{nest(65), ErrDepth, "MaxDepth (64)"},
		{`{"a":1,"a":1}`, nil, "duplicate object member name"},
	} {
		err := CheckCanonical([]byte(c.in))
		if c.msg == "" {
			if err != nil {
				t.Errorf("CheckCanonical(%s): %v", c.in, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.msg) || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("CheckCanonical(%.40s) = %v, want %v mentioning %q", c.in, err, c.want, c.msg)
		}
		if err != nil && IsCanonical([]byte(c.in)) {
			t.Errorf("IsCanonical disagrees on %s", c.in)
		}
	}
}

type decodedDoc struct {
	Name  string          `json:"name"`
	Count *uint64         `json:"count"`
	Raw   json.RawMessage `json:"raw,omitempty"`
	Inner struct {
		Key string `json:"key"`
	} `json:"inner"`
}

func TestUnmarshalRefusesWhatReadersCouldReadDifferently(t *testing.T) {
	for _, c := range []struct {
		name, in, msg string
	}{
		{"duplicate member", `{"name":"a","name":"b"}`, "duplicate object member name"},
		{"duplicate nested member", `{"inner":{"key":"a","key":"b"}}`, "duplicate object member name"},
		{"duplicate by escape", `{"name":"a","n\u0061me":"b"}`, "duplicate object member name"},
		{"differently cased", `{"Name":"a"}`, `unknown object member name "Name"`},
		{"unknown member", `{"name":"a","extra":1}`, `unknown object member name "extra"`},
		{"unknown nested member", `{"inner":{"key":"a","other":1}}`, `unknown object member name "other"`},
		{"trailing data", `{"name":"a"} {}`, "trailing data"},
		{"noncharacter", "{\"name\":\"\uffff\"}", "noncharacter"},
		{"lone surrogate", `{"name":"\ud800"}`, "surrogate"},
		{"too deep", `{"raw":` + nest(64) + `}`, "MaxDepth"},
		{"wrong type", `{"count":"1"}`, "count"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var d decodedDoc
			err := DecodeStrict([]byte(c.in), &d)
			if err == nil || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("DecodeStrict(%.60s) = %v, want an error mentioning %q", c.in, err, c.msg)
			}
		})
	}
	var d decodedDoc
	in := `{ "raw": {"z": 2.50, "a": [ 1 ]}, "name": "x", "count": 7, "inner": {"key": "k"} }`
	if err := DecodeStrict([]byte(in), &d); err != nil {
		t.Fatal(err)
	}
	if d.Name != "x" || d.Count == nil || *d.Count != 7 || d.Inner.Key != "k" || string(d.Raw) != `{"z": 2.50, "a": [ 1 ]}` {
		t.Fatalf("decoded %+v (raw %s)", d, d.Raw)
	}
	var absent decodedDoc
	if err := DecodeStrict([]byte(`{"count":null}`), &absent); err != nil || absent.Count != nil {
		t.Fatalf("null member: %+v, %v", absent, err)
	}
}

// FuzzUnmarshal: whatever Unmarshal accepts, encoding/json reads the same way, and
// Validate accepts it.
func FuzzDecodeStrict(f *testing.F) {
	f.Add(`{"name":"x","count":1,"raw":{"a":1},"inner":{"key":"k"}}`)
	f.Add(`{"name":"a","name":"b"}`)
	f.Add(`{"Name":"a"}`)
	f.Add(`{"count":null,"raw":[1,2.50]}`)
	f.Fuzz(func(t *testing.T, in string) {
		var d decodedDoc
		if err := DecodeStrict([]byte(in), &d); err != nil {
			return
		}
		if err := Validate([]byte(in)); err != nil {
			t.Fatalf("Unmarshal accepted what Validate refuses: %v", err)
		}
		var ref decodedDoc
		if err := json.Unmarshal([]byte(in), &ref); err != nil {
			t.Fatalf("encoding/json refuses what Unmarshal accepted (%v): %s", err, in)
		}
		if !reflect.DeepEqual(compactRaw(ref), compactRaw(d)) {
			t.Fatalf("readers disagree on %s:\n%+v\n%+v", in, ref, d)
		}
	})
}

func compactRaw(d decodedDoc) decodedDoc {
	if len(d.Raw) > 0 {
		d.Raw, _ = Canonicalize(d.Raw)
	}
	return d
}
