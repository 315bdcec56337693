package sso

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// claimPath is the route to a claim inside a token's claims object: one object member
// name per level.
type claimPath []string

// parseClaimPath reads a claim reference from the configuration. Two spellings:
//
//   - dotted, "realm_access.roles": each '.' steps into an object (Keycloak's
//     realm roles); "groups" is a top-level claim;
//   - a JSON Pointer (RFC 6901) when it starts with '/', for claim names that hold
//     '.' or '/' themselves: "/https:~1~1sios.example~1groups" is the top-level claim
//     "https://sios.example/groups" (Auth0 and Okta namespaced claims).
//
// Array elements are never addressed: a claim that is a list is matched by content.
func parseClaimPath(s string) (claimPath, error) {
	if s == "" {
		return nil, errors.New("empty claim path")
	}
	if len(s) > MaxClaimPathBytes {
		return nil, fmt.Errorf("claim path of %d bytes, more than %d (MaxClaimPathBytes)", len(s), MaxClaimPathBytes)
	}
	var segs []string
	if strings.HasPrefix(s, "/") {
		for _, raw := range strings.Split(s[1:], "/") {
			seg, err := unescapePointer(raw)
			if err != nil {
				return nil, fmt.Errorf("claim path %q: %v", s, err)
			}
			segs = append(segs, seg)
		}
	} else {
		segs = strings.Split(s, ".")
		for _, seg := range segs {
			if seg == "" {
				return nil, fmt.Errorf("claim path %q has an empty segment; write a claim name that holds '.' as a JSON Pointer (\"/a.b\")", s)
			}
		}
	}
	if len(segs) > MaxClaimPathSegments {
		return nil, fmt.Errorf("claim path %q has %d segments, more than %d (MaxClaimPathSegments)", s, len(segs), MaxClaimPathSegments)
	}
	return segs, nil
}

// unescapePointer undoes RFC 6901 escaping: "~1" is '/', "~0" is '~'; any other '~'
// is an error.
func unescapePointer(s string) (string, error) {
	if !strings.Contains(s, "~") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '~' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) || (s[i+1] != '0' && s[i+1] != '1') {
			return "", errors.New(`'~' must be followed by 0 or 1 (RFC 6901: "~0" is '~', "~1" is '/')`)
		}
		if s[i+1] == '0' {
			b.WriteByte('~')
		} else {
			b.WriteByte('/')
		}
		i++
	}
	return b.String(), nil
}

// String gives the path as it is written in the audit and in errors: dotted when no
// segment holds '.', '/' or '~', else as a JSON Pointer.
func (p claimPath) String() string {
	dotted := true
	for _, s := range p {
		if s == "" || strings.ContainsAny(s, "./~") {
			dotted = false
		}
	}
	if dotted {
		return strings.Join(p, ".")
	}
	var b strings.Builder
	r := strings.NewReplacer("~", "~0", "/", "~1")
	for _, s := range p {
		b.WriteByte('/')
		b.WriteString(r.Replace(s))
	}
	return b.String()
}

// decodeClaims decodes a token payload into a claims object, keeping numbers as
// their literal text so that 42 matches "42" exactly.
//
// A claim named twice, at any depth, is refused: RFC 7519 section 4 lets a parser
// refuse it rather than take the last, and sios does, so that the claim mapped to a
// tenant or clearance is the one every other verifier of the token reads.
func decodeClaims(payload []byte) (map[string]any, error) {
	if err := jsonv2.Unmarshal(payload, new(jsontext.Value)); err != nil {
		return nil, fmt.Errorf("claims are not one JSON object without repeated members: %s", clip(strings.TrimPrefix(err.Error(), "jsontext: ")))
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("claims are not a JSON object: %v", err)
	}
	if m == nil {
		return nil, errors.New("claims are not a JSON object")
	}
	if dec.More() {
		return nil, errors.New("claims are followed by trailing data")
	}
	return m, nil
}

// lookup walks p through nested objects.
func (p claimPath) lookup(claims map[string]any) (any, bool) {
	var cur any = claims
	for _, seg := range p {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[seg]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// claimValues gives the values a claim holds for matching: a string is one value, a
// list gives each of its strings; true, false and numbers count as their JSON text.
// Objects, nulls and lists inside lists hold no value.
func claimValues(v any) []string {
	if s, ok := scalarText(v); ok {
		return []string{s}
	}
	list, ok := v.([]any)
	if !ok {
		return nil
	}
	out := make([]string, 0, len(list))
	for _, e := range list {
		if s, ok := scalarText(e); ok {
			out = append(out, s)
		}
	}
	return out
}

func scalarText(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		if x {
			return "true", true
		}
		return "false", true
	case json.Number:
		return x.String(), true
	}
	return "", false
}

// stringClaim gives a claim that must be exactly one string (or a list of exactly
// one string, as some providers emit single-valued attributes).
func stringClaim(claims map[string]any, p claimPath) (string, error) {
	v, ok := p.lookup(claims)
	if !ok {
		return "", fmt.Errorf("the token has no %s claim", p)
	}
	if s, ok := v.(string); ok {
		return s, nil
	}
	if list, ok := v.([]any); ok && len(list) == 1 {
		if s, ok := list[0].(string); ok {
			return s, nil
		}
	}
	return "", fmt.Errorf("the %s claim is not a single string", p)
}
