package jcs

import (
	"bytes"
	"encoding/json"
	"testing"
)

// encodingJSON is how encoding/json writes s, with or without its HTML escapes.
func encodingJSON(t testing.TB, s string, html bool) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(html)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func TestAppendQuotedIsEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", "a\"b\\c", "\x00\x01\x1f\x7f", "\n\r\t\b\f", "<a href='x'>&amp;</a>",
		"\u2028\u2029", "\xff\xfe", "caf\xc3", "\ufffe\uffff", "😀 €", "\xed\xa0\x80"} {
		for _, html := range []bool{true, false} {
			if got, want := AppendQuoted(nil, s, html), encodingJSON(t, s, html); !bytes.Equal(got, want) {
				t.Errorf("AppendQuoted(%q, %v) = %s, encoding/json writes %s", s, html, got, want)
			}
		}
	}
}

func FuzzAppendQuoted(f *testing.F) {
	for _, s := range []string{"", "x<y>&z", "\u2028", "\xff", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, html := range []bool{true, false} {
			if got, want := AppendQuoted([]byte("prefix"), s, html), append([]byte("prefix"), encodingJSON(t, s, html)...); !bytes.Equal(got, want) {
				t.Fatalf("AppendQuoted(%q, %v) = %s, encoding/json writes %s", s, html, got, want)
			}
		}
	})
}
