package jcs

import (
	"errors"
	"testing"
)

type decodeDoc struct {
	V    string `json:"v"`
	N    int    `json:"n,omitempty"`
	Data []byte `json:"data,omitempty"`
}

func TestUnmarshalStrict(t *testing.T) {
	for _, c := range []struct {
		name, in string
		want     error // nil: accepted
	}{
		{"exact", `{"data":"AQI=","n":2,"v":"x"}`, nil},
		{"omitted optional", `{"v":"x"}`, nil},
		{"duplicate member", `{"v":"x","v":"y"}`, ErrNotCanonical},
		{"unsorted", `{"v":"x","n":2}`, ErrNotCanonical},
		{"whitespace", `{"v": "x"}`, ErrNotCanonical},
		{"unknown member", `{"v":"x","w":1}`, ErrNotExact},
		{"differently cased", `{"V":"x"}`, ErrNotExact},
		{"missing required", `{"n":1}`, ErrNotExact},
		{"explicit zero", `{"n":0,"v":"x"}`, ErrNotExact},
		{"base64 with a line break", `{"data":"AQ\nI=","v":"x"}`, ErrNotExact},
	} {
		t.Run(c.name, func(t *testing.T) {
			var d decodeDoc
			err := Unmarshal([]byte(c.in), &d)
			if c.want == nil {
				if err != nil {
					t.Fatalf("Unmarshal(%s) = %v, want nil", c.in, err)
				}
				again, err := Marshal(&d)
				if err != nil || string(again) != c.in {
					t.Fatalf("Marshal after Unmarshal = %s, %v; want %s", again, err, c.in)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("Unmarshal(%s) = %v, want %v", c.in, err, c.want)
			}
		})
	}
}

func TestUnmarshalTypeError(t *testing.T) {
	var d decodeDoc
	err := Unmarshal([]byte(`{"v":1}`), &d)
	if err == nil || errors.Is(err, ErrNotCanonical) || errors.Is(err, ErrNotExact) {
		t.Fatalf("Unmarshal with a number for a string = %v, want encoding/json's type error", err)
	}
}
