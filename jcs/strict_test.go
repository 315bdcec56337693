package jcs

import (
	"bytes"
	"errors"
	"testing"
)

type strictDoc struct {
	V     string   `json:"v"`
	N     int      `json:"n"`
	Bytes []byte   `json:"bytes,omitempty"`
	List  []string `json:"list,omitempty"`
	Inner *struct {
		A string `json:"a"`
	} `json:"inner,omitempty"`
}

func TestUnmarshalAcceptsExactlyWhatMarshalMakes(t *testing.T) {
	in := strictDoc{V: "x/1", N: 7, Bytes: []byte{1, 2, 3}, List: []string{"b", "a"}}
	in.Inner = &struct {
		A string `json:"a"`
	}{A: "é\"<"}
	b, err := Marshal(&in)
	if err != nil {
		t.Fatal(err)
	}
	if !IsCanonical(b) {
		t.Fatalf("Marshal made non-canonical bytes: %s", b)
	}
	var out strictDoc
	if err := Unmarshal(b, &out); err != nil {
		t.Fatalf("Unmarshal(Marshal(x)): %v", err)
	}
	again, _ := Marshal(&out)
	if !bytes.Equal(again, b) {
		t.Fatalf("round trip changed bytes:\n%s\n%s", b, again)
	}
}

func TestUnmarshalRefusals(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     error // nil: any error
	}{
		{"duplicate member", `{"n":1,"n":2,"v":"x"}`, ErrNotCanonical},
		{"duplicate member out of order", `{"v":"x","n":1,"n":1}`, ErrNotCanonical},
		{"whitespace", `{"n":1, "v":"x"}`, ErrNotCanonical},
		{"unsorted", `{"v":"x","n":1}`, ErrNotCanonical},
		{"non-canonical escape", `{"n":1,"v":"\u0078"}`, ErrNotCanonical},
		{"trailing newline", "{\"n\":1,\"v\":\"x\"}\n", ErrNotCanonical},
		{"not JSON", `{"n":`, ErrNotCanonical},
		{"unknown member", `{"n":1,"v":"x","w":2}`, nil},
		{"differently cased member", `{"N":1,"v":"x"}`, ErrNotExact},
		{"missing member", `{"v":"x"}`, ErrNotExact},
		{"null member", `{"n":null,"v":"x"}`, ErrNotExact},
		{"empty optional spelt out", `{"list":[],"n":1,"v":"x"}`, ErrNotExact},
		{"base64 with a line break", `{"bytes":"AQ\nID","n":1,"v":"x"}`, ErrNotExact},
		{"wrong type", `{"n":"1","v":"x"}`, nil},
		{"array at top", `[]`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d strictDoc
			err := Unmarshal([]byte(tc.in), &d)
			if err == nil {
				t.Fatalf("Unmarshal(%s) accepted it", tc.in)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Unmarshal(%s) = %v, want %v", tc.in, err, tc.want)
			}
		})
	}
}

// FuzzUnmarshal: whatever Unmarshal accepts is exactly what Marshal makes of the value.
func FuzzUnmarshal(f *testing.F) {
	f.Add([]byte(`{"n":1,"v":"x"}`))
	f.Add([]byte(`{"bytes":"AQID","inner":{"a":"é"},"list":["a"],"n":-3,"v":""}`))
	f.Add([]byte(`{"n":1,"n":1,"v":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var d strictDoc
		if Unmarshal(b, &d) != nil {
			return
		}
		again, err := Marshal(&d)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted %q but it encodes to %q (%v)", b, again, err)
		}
	})
}
