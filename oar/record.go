// Package oar is the Open Audit Record, version 1: the entries of a sios audit log,
// their canonical encoding, hashing, seals and receipts. It is pure: no I/O, no clocks.
//
// The format is published in docs/open-audit-record.md with test vectors in
// oar/testdata; anything here that changes bytes on the wire changes that document.
package oar

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sios-project/sios/jcs"
)

// Version is the value of every entry's "v" member.
const Version = "oar/1"

// Entry kinds. Only append to this list: a published kind never changes meaning.
const (
	KindRecord = "record"
	KindSeal   = "seal"
)

// MaxEntrySize is the largest canonical entry: the C2SP tlog-tiles limit (2-byte length).
const MaxEntrySize = 1<<16 - 1

// Limits on attacker-controlled record content, named in errors when exceeded.
const (
	MaxFieldLen = 1024 // any single string field
	MaxDigests  = 64   // inputs, outputs
	MaxLinks    = 64
	MaxParties  = 16
)

// Classifications, in order. Only append, and only at the top.
var Classifications = []string{"OFFICIAL", "OFFICIAL-SENSITIVE", "SECRET", "TOP-SECRET"}

// Record is one audited action.
type Record struct {
	V              string            `json:"v"`
	Kind           string            `json:"kind"`
	Time           string            `json:"time"`
	Node           string            `json:"node"`
	Tenant         string            `json:"tenant,omitempty"`
	Actor          Actor             `json:"actor"`
	Action         string            `json:"action"`
	Resource       string            `json:"resource,omitempty"`
	Decision       *Decision         `json:"decision,omitempty"`
	Classification string            `json:"classification,omitempty"`
	Inputs         []Digest          `json:"inputs,omitempty"`
	Outputs        []Digest          `json:"outputs,omitempty"`
	Links          []Link            `json:"links,omitempty"`
	Parties        []json.RawMessage `json:"parties,omitempty"`
	Detail         json.RawMessage   `json:"detail,omitempty"`
}

// Actor is the principal on whose behalf the action was taken.
type Actor struct {
	ID        string `json:"id"`
	Clearance string `json:"clearance,omitempty"`
}

// Decision is a governance decision and the policies that made it.
type Decision struct {
	Effect   string   `json:"effect"` // "allow" or "deny"
	Policies []string `json:"policies,omitempty"`
}

// Digest names a piece of content by its SHA-256, never by its text.
type Digest struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size,omitempty"`
}

// Link points at another record by its record hash.
type Link struct {
	Rel        string `json:"rel"`
	RecordHash string `json:"record_hash"`
}

// DigestOf returns the Digest of content.
func DigestOf(name string, content []byte) Digest {
	s := sha256.Sum256(content)
	return Digest{Name: name, SHA256: hex.EncodeToString(s[:]), Size: int64(len(content))}
}

// FormatTime is the record time format: RFC 3339, UTC, nanoseconds.
func FormatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// Validate checks the record's required members and limits.
func (r *Record) Validate() error {
	if r.V != Version {
		return fmt.Errorf("v is %q, want %q", r.V, Version)
	}
	if r.Kind != KindRecord {
		return fmt.Errorf("kind is %q, want %q", r.Kind, KindRecord)
	}
	if err := checkTime(r.Time); err != nil {
		return err
	}
	for _, f := range []struct{ name, val string }{
		{"node", r.Node}, {"actor.id", r.Actor.ID}, {"action", r.Action},
	} {
		if f.val == "" {
			return fmt.Errorf("%s is required", f.name)
		}
	}
	for _, f := range []struct{ name, val string }{
		{"node", r.Node}, {"tenant", r.Tenant}, {"actor.id", r.Actor.ID}, {"actor.clearance", r.Actor.Clearance},
		{"action", r.Action}, {"resource", r.Resource}, {"classification", r.Classification},
	} {
		if len(f.val) > MaxFieldLen {
			return fmt.Errorf("%s is %d bytes, more than the limit of %d (MaxFieldLen)", f.name, len(f.val), MaxFieldLen)
		}
	}
	if c := r.Actor.Clearance; c != "" && ClassificationRank(c) < 0 {
		return fmt.Errorf("actor.clearance %q is not one of %v", c, Classifications)
	}
	if c := r.Classification; c != "" && ClassificationRank(c) < 0 {
		return fmt.Errorf("classification %q is not one of %v", c, Classifications)
	}
	if d := r.Decision; d != nil && d.Effect != "allow" && d.Effect != "deny" {
		return fmt.Errorf("decision.effect %q must be allow or deny", d.Effect)
	}
	if len(r.Inputs) > MaxDigests || len(r.Outputs) > MaxDigests {
		return fmt.Errorf("more than %d inputs or outputs (MaxDigests)", MaxDigests)
	}
	if len(r.Links) > MaxLinks {
		return fmt.Errorf("more than %d links (MaxLinks)", MaxLinks)
	}
	if len(r.Parties) > MaxParties {
		return fmt.Errorf("more than %d parties (MaxParties)", MaxParties)
	}
	for _, d := range append(append([]Digest(nil), r.Inputs...), r.Outputs...) {
		if !isHash(d.SHA256) {
			return fmt.Errorf("digest %q: sha256 must be 64 lowercase hex digits", d.Name)
		}
		if d.Size < 0 || d.Size > maxExactInt {
			return fmt.Errorf("digest %q: size %d is outside 0..2^53", d.Name, d.Size)
		}
	}
	for _, l := range r.Links {
		if !isHash(l.RecordHash) {
			return fmt.Errorf("link %q: record_hash must be 64 lowercase hex digits", l.Rel)
		}
	}
	for i, p := range r.Parties {
		if !isObject(p) {
			return fmt.Errorf("parties[%d] must be a JSON object", i)
		}
	}
	if r.Detail != nil && !isObject(r.Detail) {
		return errors.New("detail must be a JSON object")
	}
	return nil
}

// maxExactInt is the largest integer every JSON implementation holds exactly (2^53).
const maxExactInt = 1 << 53

// isHash reports whether s is a SHA-256 in lowercase hex, the only spelling allowed,
// so that one hash has one encoding.
func isHash(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func isObject(b json.RawMessage) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == '{'
}

// checkTime requires the one spelling FormatTime produces: RFC 3339 in UTC with 'Z'
// and no trailing zeros in the fraction.
func checkTime(s string) error {
	if canonicalTime(s) {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || FormatTime(t) != s {
		return fmt.Errorf("time %q is not RFC 3339 UTC as the format requires (e.g. %s)", s, FormatTime(time.Unix(0, 1).UTC()))
	}
	return nil
}

// canonicalTime accepts, without parsing into a time.Time, the times FormatTime makes
// for years 0000–9999 — YYYY-MM-DDTHH:MM:SS, then a fraction of 1 to 9 digits without a
// trailing zero, or none, then Z — with a real calendar date and a time of day. Every
// record and seal is checked on writing and reading; this is the common case, and
// anything it does not accept goes to the full parse (FuzzCanonicalTime holds the two
// to the same answer).
func canonicalTime(s string) bool {
	const base = len("2006-01-02T15:04:05Z")
	if len(s) < base || s[len(s)-1] != 'Z' || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return false
	}
	num := func(from, to int) int {
		n := 0
		for i := from; i < to; i++ {
			c := s[i]
			if c < '0' || c > '9' {
				return -1
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	year, month, day := num(0, 4), num(5, 7), num(8, 10)
	hour, minute, second := num(11, 13), num(14, 16), num(17, 19)
	if year < 0 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59 {
		return false
	}
	days := [13]int{0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}[month]
	if month == 2 && year%4 == 0 && (year%100 != 0 || year%400 == 0) {
		days = 29
	}
	if day > days {
		return false
	}
	frac := s[19 : len(s)-1]
	switch {
	case frac == "":
		return true
	case len(frac) < 2 || len(frac) > 10 || frac[0] != '.' || frac[len(frac)-1] == '0':
		return false
	}
	return num(20, len(s)-1) >= 0
}

// ClassificationRank is the position of c in Classifications, or -1.
func ClassificationRank(c string) int {
	for i, x := range Classifications {
		if x == c {
			return i
		}
	}
	return -1
}

// Encode validates r and returns its canonical (RFC 8785) encoding: the exact bytes
// that are logged and hashed.
func (r *Record) Encode() ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return encode(r)
}

// sameEncoding requires that the entry is exactly the encoding of what was decoded
// from it. Go's decoder matches member names without regard to case and skips unknown
// members; this check turns both into errors, so that every implementation reads an
// entry the same way and every byte of it is covered by its meaning.
func sameEncoding(b []byte, v any) error {
	again, err := encode(v)
	if err != nil {
		return err
	}
	if !bytes.Equal(again, b) {
		return errors.New("holds members that are not part of " + Version + " (unknown, misspelt or differently cased)")
	}
	return nil
}

// Entry is a parsed log entry: exactly one of Record and Seal is set.
type Entry struct {
	Kind   string
	Record *Record
	Seal   *Seal
}

// ErrNotCanonical marks entries whose bytes are not their own canonical encoding.
var ErrNotCanonical = errors.New("entry is not in canonical form (RFC 8785)")

// Parse decodes a log entry, requiring that its bytes are canonical and that it is a
// valid record or seal.
func Parse(b []byte) (*Entry, error) {
	if len(b) > MaxEntrySize {
		return nil, fmt.Errorf("entry is %d bytes, more than the limit of %d (MaxEntrySize)", len(b), MaxEntrySize)
	}
	// Most entries are exactly what the encoder writes for the record or seal they
	// decode to (sameEncoding), and the encoder writes canonical I-JSON: the members in
	// order, strings escaped as RFC 8785 says, detail and parties checked whole
	// (AppendNested, with the entry's depth). What it passes through unchecked — bytes
	// beyond ASCII, integers a double would round — plainEntry sends down the full
	// path, which checks the canonical form first and explains any refusal. Both paths
	// accept the same entries (FuzzParseIsTheCheckedParse); verification reads every
	// entry, and this one skips a second parse of each.
	if plainEntry(b) {
		if e, err := parseDecoded(b); err == nil {
			return e, nil
		}
	}
	return parseChecked(b)
}

// plainEntry reports whether b is all ASCII and holds no number outside a string of
// more than 15 digits (every integer of up to 15 digits is exact as a double). It
// looks at each byte once, and jumps over strings (most of a seal is its signatures).
func plainEntry(b []byte) bool {
	if !isASCII(b) {
		return false
	}
	digits := 0
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			end, ok := stringEnd(b, i+1)
			if !ok {
				return false
			}
			i, digits = end, 0
		case c >= '0' && c <= '9':
			if digits++; digits > 15 {
				return false
			}
		default:
			digits = 0
		}
	}
	return true
}

// stringEnd is the index of the quote that ends the string whose text starts at from:
// the first quote not escaped by an odd run of backslashes.
func stringEnd(b []byte, from int) (int, bool) {
	for {
		k := bytes.IndexByte(b[from:], '"')
		if k < 0 {
			return 0, false
		}
		end := from + k
		n := 0
		for p := end - 1; p >= from && b[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return end, true
		}
		from = end + 1
	}
}

// isASCII reports whether every byte of b is below 0x80, eight at a time.
func isASCII(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b)&0x8080808080808080 != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// parseChecked is Parse with the canonical form checked first.
func parseChecked(b []byte) (*Entry, error) {
	if err := jcs.CheckCanonical(b); err != nil {
		if nc := (*jcs.NotCanonicalError)(nil); errors.As(err, &nc) {
			return nil, fmt.Errorf("%w, from byte offset %d", ErrNotCanonical, nc.Offset)
		}
		return nil, fmt.Errorf("entry is not valid I-JSON (RFC 7493): %w", err)
	}
	return parseDecoded(b)
}

// parseDecoded decodes b and requires that it is a valid record or seal whose encoding
// is b.
func parseDecoded(b []byte) (*Entry, error) {
	// One decode into the union of both kinds' members; kind picks the result.
	var w union
	if err := decodeUnion(b, &w); err != nil {
		return nil, fmt.Errorf("entry: %v", err)
	}
	if w.V != Version {
		return nil, fmt.Errorf("entry v is %q, want %q", w.V, Version)
	}
	switch w.Kind {
	case KindRecord:
		r := w.Record
		// Unknown or misspelt members first: they explain a missing one best.
		if err := sameEncoding(b, &r); err != nil {
			return nil, fmt.Errorf("record: %v", err)
		}
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("record: %v", err)
		}
		return &Entry{Kind: KindRecord, Record: &r}, nil
	case KindSeal:
		s := &Seal{V: w.V, Kind: w.Kind, Node: w.Node, Seq: w.Seq, First: w.First, Count: w.Count,
			Root: w.Root, Prev: w.Prev, Time: w.Time, Sig: w.Sig}
		if err := s.validate(); err != nil {
			return nil, err
		}
		if err := sameEncoding(b, s); err != nil {
			return nil, fmt.Errorf("seal %d: %v", s.Seq, err)
		}
		return &Entry{Kind: KindSeal, Seal: s}, nil
	default:
		return nil, fmt.Errorf("entry kind %q is not %q or %q", w.Kind, KindRecord, KindSeal)
	}
}
