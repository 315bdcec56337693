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
// Unmarshal refuses all three. It refuses what Validate refuses (invalid UTF-8, lone
// surrogates, noncharacters, numbers beyond a double, nesting beyond MaxDepth,
// duplicate names at any depth, trailing data), and then decodes with
// github.com/go-json-experiment/json (the Go team's encoding/json/v2) matching names
// exactly and rejecting unknown members. Struct tags are read as encoding/json reads
// them; values implementing json.Unmarshaler (json.RawMessage) get their bytes as given.
//
// It does not check that required members are present: a member that is absent or
// null leaves its field as it was, so use pointer fields where that matters.
func DecodeStrict(data []byte, v any) error {
	if err := Validate(data); err != nil {
		return err
	}
	if err := jsonv2.Unmarshal(data, v, jsonv2.RejectUnknownMembers(true)); err != nil {
		return fmt.Errorf("jcs: %v", err)
	}
	return nil
}
