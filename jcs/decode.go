package jcs

import (
	"fmt"

	jsonv2 "github.com/go-json-experiment/json"
)

// DecodeStrict decodes the JSON document data into v strictly, for bytes that come from
// outside and must read the same to every verifier, but need not be canonical (an
// indented evidence bundle, a receipt file, a line of 'audit append --stdin'). A signed
// format whose bytes are canonical is read with Unmarshal instead. encoding/json lets the last of two
// members with one name win, matches member names without regard to case and skips
// members it does not know, so that two programs can read one document differently;
// DecodeStrict refuses all three. It refuses what Validate refuses (invalid UTF-8, lone
// surrogates, noncharacters, numbers beyond a double, nesting beyond MaxDepth,
// duplicate names at any depth, trailing data) and, as AppendNested does, any number
// a double would change (12345678901234567890, which a reader in JavaScript would take
// for another value), and then decodes with
// github.com/go-json-experiment/json (the Go team's encoding/json/v2) matching names
// exactly and rejecting unknown members. Struct tags are read as encoding/json reads
// them; values implementing json.Unmarshaler (json.RawMessage) get their bytes as given.
//
// It does not check that required members are present: a member that is absent
// leaves its field as it was and one that is null sets it to its zero value, so use
// pointer fields where absence or null matters.
func DecodeStrict(data []byte, v any) error {
	if err := validateExact(data); err != nil {
		return err
	}
	if err := jsonv2.Unmarshal(data, v, jsonv2.RejectUnknownMembers(true)); err != nil {
		// Wrapped, so that a caller can find a field decoder's own error (errors.As)
		// and where it was (a *json.SemanticError of go-json-experiment/json).
		return fmt.Errorf("jcs: %w", err)
	}
	return nil
}

// DecodeMembers decodes data into v strict about members only: a member named twice, a
// member differently cased than v's, and a member v does not have are refused, naming
// it, as DecodeStrict refuses them; invalid UTF-8 is refused too. It does not apply
// I-JSON's value rules (noncharacters, numbers beyond a double's precision): it is for
// request bodies of a wire protocol the node shares with clients that send such values
// (OpenAI's chat and embeddings), whose values the node digests rather than signs.
func DecodeMembers(data []byte, v any) error {
	if err := jsonv2.Unmarshal(data, v, jsonv2.RejectUnknownMembers(true)); err != nil {
		return fmt.Errorf("jcs: %w", err)
	}
	return nil
}

// ShortEscape is the byte a two-character JSON string escape stands for (RFC 8259
// section 7): c is the character after the backslash. It is false for 'u', whose four
// hex digits the caller reads, and for anything that is no escape.
func ShortEscape(c byte) (byte, bool) {
	switch c {
	case '"', '\\', '/':
		return c, true
	case 'b':
		return '\b', true
	case 'f':
		return '\f', true
	case 'n':
		return '\n', true
	case 'r':
		return '\r', true
	case 't':
		return '\t', true
	}
	return 0, false
}

// Hex4 reads the four hex digits of a \u escape from the start of b (RFC 8259
// section 7); false if b is shorter or holds anything else there.
func Hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		v := jcsUnhex(c)
		if v == 0xff {
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	return r, true
}
