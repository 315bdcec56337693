package oar

import (
	"testing"
	"time"
)

// FuzzCanonicalTime: the fast check of a record's time accepts only what the full
// parse and re-format accepts.
func FuzzCanonicalTime(f *testing.F) {
	for _, s := range []string{"2026-12-06T10:31:34.123456789Z", "2026-12-06T10:31:34Z", "2024-02-29T00:00:00.5Z",
		"2023-02-29T00:00:00Z", "2026-12-06T10:31:34.120Z", "2026-12-06T10:31:34.Z", "2026-12-06T24:00:00Z",
		"2026-12-06T10:31:60Z", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z", "2026-12-06t10:31:34Z",
		"2026-12-06T10:31:34+00:00", "2026-12-06T10:31:34.1234567891Z", "1900-02-29T00:00:00Z", "2000-02-29T00:00:00Z",
		"2026-13-01T00:00:00Z", "2026-00-10T00:00:00Z", "2026-04-31T00:00:00Z", "+026-12-06T10:31:34Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tm, err := time.Parse(time.RFC3339Nano, s)
		slow := err == nil && FormatTime(tm) == s
		if canonicalTime(s) && !slow {
			t.Fatalf("%q: the fast check accepts what the full parse refuses", s)
		}
		if (checkTime(s) == nil) != slow {
			t.Fatalf("%q: checkTime %v, full parse %v", s, checkTime(s), slow)
		}
	})
}

// BenchmarkCheckTime: the check of a record's time, against the full parse and
// re-format it replaces in the common case.
func BenchmarkCheckTime(b *testing.B) {
	s := FormatTime(time.Now())
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			if checkTime(s) != nil {
				b.Fatal(s)
			}
		}
	})
	b.Run("parse", func(b *testing.B) {
		for b.Loop() {
			if t, err := time.Parse(time.RFC3339Nano, s); err != nil || FormatTime(t) != s {
				b.Fatal(s)
			}
		}
	})
}
