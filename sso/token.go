package sso

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
)

// LooksLikeJWT reports whether a bearer credential has the shape of a signed JWT:
// three base64url segments joined by '.', the first decoding to a JSON object. It
// says nothing about validity. An API key (policy.APIKeyPrefix followed by base32)
// holds no '.', so it is never taken for a JWT, and no JWT starts with "sios_".
func LooksLikeJWT(s string) bool {
	if len(s) > MaxTokenBytes {
		return false
	}
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if p == "" || strings.IndexFunc(p, func(r rune) bool { return !isBase64URL(r) }) >= 0 {
			return false
		}
	}
	var header map[string]any
	b, err := base64.RawURLEncoding.DecodeString(parts[0])
	return err == nil && json.Unmarshal(b, &header) == nil && header != nil
}

func isBase64URL(r rune) bool {
	return 'A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' || r == '_'
}

// peekIssuer reads the "iss" claim of a JWT without verifying it, to choose the
// issuer whose keys verify it. Nothing else is read from the unverified payload.
func peekIssuer(token string) (string, error) {
	if len(token) > MaxTokenBytes {
		return "", errors.New("token longer than MaxTokenBytes")
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("not a signed JWT (want three '.'-separated parts)")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", errors.New("payload is not base64url")
	}
	var claims struct {
		Issuer *string `json:"iss"`
	}
	// Exactly "iss", once (go-json-experiment/json's defaults): encoding/json would take
	// "ISS" for it, or the last of two, and choose keys by a claim the verified
	// claims do not hold.
	if err := jsonv2.Unmarshal(payload, &claims); err != nil {
		return "", errors.New("payload is not a JSON object with a string \"iss\"")
	}
	if claims.Issuer == nil || *claims.Issuer == "" {
		return "", errors.New("payload has no \"iss\" claim")
	}
	return *claims.Issuer, nil
}
