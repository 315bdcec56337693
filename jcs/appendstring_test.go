package jcs

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// AppendString writes what canonicalising the string's JSON gives, byte for byte,
// and refuses what Canonicalize refuses.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "abc", `a"b\c`, "tab\there", "\x00\x1f\x7f", "é€😀", "\ufdd0", "\xff", strings.Repeat("4a6d", 16)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := AppendString(nil, s)
		if !utf8.ValidString(s) {
			if err == nil {
				t.Fatalf("%q: invalid UTF-8 accepted", s)
			}
			return
		}
		raw, _ := json.Marshal(s)
		want, werr := Canonicalize(raw)
		if (err != nil) != (werr != nil) {
			t.Fatalf("%q: AppendString err %v, Canonicalize err %v", s, err, werr)
		}
		if err == nil && string(got) != string(want) {
			t.Fatalf("%q: AppendString %s, canonical %s", s, got, want)
		}
	})
}

// A hash-like string: the common case on the audit hot path.
func BenchmarkAppendStringHex(b *testing.B) {
	s := strings.Repeat("4a6da3062e8d4d05", 4)
	buf := make([]byte, 0, 256)
	for b.Loop() {
		buf, _ = AppendString(buf[:0], s)
	}
}
