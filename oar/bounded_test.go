package oar

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestBounded(t *testing.T) {
	if got := Bounded("calculator", 256); got != "calculator" {
		t.Fatal(got)
	}
	long := strings.Repeat("é", 40000) // 80 kB
	got := Bounded(long, MaxOutsideValue)
	if len(got) > MaxOutsideValue || !utf8.ValidString(got) || !strings.Contains(got, "…sha256:") {
		t.Fatalf("%d bytes: %q", len(got), got)
	}
	if Bounded(long+"x", MaxOutsideValue) == got {
		t.Fatal("two different values bound to the same text")
	}
	if got := Bounded("bad \xff utf8", 256); !utf8.ValidString(got) {
		t.Fatalf("%q", got)
	}
}

func FuzzBounded(f *testing.F) {
	f.Add("calculator", 256)
	f.Add(strings.Repeat("x", 1000), 64)
	f.Add("\xff\xfe", 3)
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max < 0 || max > 1<<16 {
			return
		}
		got := Bounded(s, max)
		if !utf8.ValidString(got) {
			t.Fatalf("invalid UTF-8 from %q", s)
		}
		if got != s && len(got) > max && max >= 80 {
			t.Fatalf("%d bytes > %d", len(got), max)
		}
	})
}
