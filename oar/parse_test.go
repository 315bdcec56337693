package oar

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// vectorEntries are the published vector records and seal (testdata/vectors.json).
func vectorEntries(tb testing.TB) [][]byte {
	raw, err := os.ReadFile(filepath.Join("testdata", "vectors.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var v struct {
		Records []struct {
			Canonical string `json:"canonical"`
		} `json:"records"`
		Seal struct {
			Canonical string `json:"canonical"`
		} `json:"seal"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		tb.Fatal(err)
	}
	var entries [][]byte
	for _, r := range v.Records {
		entries = append(entries, []byte(r.Canonical))
	}
	return append(entries, []byte(v.Seal.Canonical))
}

// Parse takes an entry whose bytes are what the encoder writes without the canonical
// check first (plainEntry); parseChecked checks first. For every input both must give
// the same entry or the same error.
func FuzzParseIsTheCheckedParse(f *testing.F) {
	for _, e := range vectorEntries(f) {
		f.Add(e)
	}
	for _, s := range []string{
		`{"kind":"record","v":"oar/1"}`,
		`{"action":"brain.invoke","actor":{"id":"a"},"detail":{"n":12345678901234567},"kind":"record","node":"n","time":"2026-01-01T00:00:00Z","v":"oar/1"}`,
		`{"action":"brain.invoke","actor":{"id":"a"},"detail":{"s":"\ufdd0"},"kind":"record","node":"n","time":"2026-01-01T00:00:00Z","v":"oar/1"}`,
		"{\"action\":\"brain.invoke\",\"actor\":{\"id\":\"\xef\xbf\xbf\"},\"kind\":\"record\",\"node\":\"n\",\"time\":\"2026-01-01T00:00:00Z\",\"v\":\"oar/1\"}",
		`{"action":"brain.invoke","actor":{"id":"\ud800"},"kind":"record","node":"n","time":"2026-01-01T00:00:00Z","v":"oar/1"}`,
		`{"action":"brain.invoke","actor":{"id":"a"},"inputs":[{"name":"m","sha256":"00","size":9007199254740993}],"kind":"record","node":"n","time":"2026-01-01T00:00:00Z","v":"oar/1"}`,
		`{"count":9007199254740993,"first":0,"kind":"seal","node":"n","prev":"","root":"","seq":0,"time":"2026-01-01T00:00:00Z","v":"oar/1"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > MaxEntrySize {
			return
		}
		got, gerr := Parse(b)
		want, werr := parseChecked(b)
		if (gerr == nil) != (werr == nil) || gerr != nil && gerr.Error() != werr.Error() {
			t.Fatalf("%q:\nParse:        %v\nparseChecked: %v", b, gerr, werr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: entries differ:\n%+v\n%+v", b, got, want)
		}
	})
}

func TestPlainEntry(t *testing.T) {
	for in, want := range map[string]bool{
		`{"a":"b"}`:                         true,
		`{"a":123456789012345}`:             true,
		`{"a":1234567890123456}`:            false,
		`{"a":"1234567890123456789"}`:       true, // digits in a string
		`{"a":"x\"1234567890123456789"}`:    true, // after an escaped quote, still in the string
		`{"a":"x\\","b":1234567890123456}`:  false,
		"{\"a\":\"\xc3\xa9\"}":              false,
		`{"a":[123456789012345,123456789]}`: true,
	} {
		if got := plainEntry([]byte(in)); got != want {
			t.Errorf("plainEntry(%s) = %v, want %v", in, got, want)
		}
	}
}

// BenchmarkParse: the published vector records and seal, parsed as verification parses
// every entry (Parse), and with the canonical form checked first (parseChecked, as Parse
// did before); and the records alone.
func BenchmarkParse(b *testing.B) {
	entries := vectorEntries(b)
	records := entries[:len(entries)-1] // a log holds hundreds of records per seal
	for _, c := range []struct {
		name    string
		parse   func([]byte) (*Entry, error)
		entries [][]byte
	}{{"plain", Parse, entries}, {"checked-first", parseChecked, entries}, {"records", Parse, records}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := range b.N {
				if _, err := c.parse(c.entries[i%len(c.entries)]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
