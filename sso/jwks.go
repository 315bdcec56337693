package sso

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
	jsonv2 "github.com/go-json-experiment/json"
)

// parseDiscovery reads an issuer's discovery document (OpenID Connect Discovery 1.0,
// section 3) and returns its jwks_uri. The document must name exactly the configured
// issuer, and the jwks_uri must be on the issuer's own origin: keys are fetched from
// nowhere the operator did not name.
//
// SPEC: https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderMetadata
func parseDiscovery(b []byte, issuerURL string) (string, error) {
	if len(b) > MaxDiscoveryBytes {
		return "", fmt.Errorf("discovery document of %d bytes, more than %d (MaxDiscoveryBytes)", len(b), MaxDiscoveryBytes)
	}
	var doc struct {
		Issuer  *string `json:"issuer"`
		JWKSURI *string `json:"jwks_uri"`
	}
	// Leniently about members it does not define (providers publish many), but each
	// name exactly and once (go-json-experiment/json's defaults), so that "ISSUER" or a
	// second "jwks_uri" cannot stand in for the one the node checks.
	if err := jsonv2.Unmarshal(b, &doc); err != nil {
		return "", errors.New("discovery document is not a JSON object with string \"issuer\" and \"jwks_uri\", each once")
	}
	if doc.Issuer == nil || *doc.Issuer != issuerURL {
		got := "none"
		if doc.Issuer != nil {
			got = fmt.Sprintf("%q", clip(*doc.Issuer))
		}
		return "", fmt.Errorf("discovery document names issuer %s, not the configured %q", got, issuerURL)
	}
	if doc.JWKSURI == nil {
		return "", errors.New("discovery document has no jwks_uri")
	}
	jwksURI := *doc.JWKSURI
	if err := checkURL(jwksURI); err != nil {
		return "", fmt.Errorf("discovery document's jwks_uri: %v", err)
	}
	iu, _ := url.Parse(issuerURL)
	ju, _ := url.Parse(jwksURI)
	if !sameOrigin(iu, ju) {
		return "", fmt.Errorf("discovery document's jwks_uri %q is not on the issuer's origin; if that is where this issuer keeps its keys, set jwks_uri in the configuration (and allow it through the egress guard)", clip(jwksURI))
	}
	return jwksURI, nil
}

// parseJWKS reads a JSON Web Key Set (RFC 7517, section 5) and keeps the keys that can
// check a signature made with one of algs: public RSA (at least MinRSABits), ECDSA or
// Ed25519 keys whose "use", if given, is "sig" and whose "alg", if given, is in algs.
// Other keys are skipped, as RFC 7517 asks of keys a reader does not understand; a set
// with no usable key, or more than MaxKeys, is an error.
//
// SPEC: https://www.rfc-editor.org/rfc/rfc7517#section-5
func parseJWKS(b []byte, algs []string) ([]jose.JSONWebKey, error) {
	if len(b) > MaxJWKSBytes {
		return nil, fmt.Errorf("key set of %d bytes, more than %d (MaxJWKSBytes)", len(b), MaxJWKSBytes)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	// A member named twice anywhere in the set (a key's "n" or "x", a second "keys")
	// is refused, so that the key checked is the key every reader of the set sees;
	// members the node does not know are skipped, as RFC 7517 asks.
	if err := jsonv2.Unmarshal(b, &set); err != nil || set.Keys == nil {
		return nil, errors.New("key set is not a JSON object with a \"keys\" list, without repeated members")
	}
	var keys []jose.JSONWebKey
	for _, raw := range set.Keys {
		k, ok := usableKey(raw, algs)
		if !ok {
			continue
		}
		if len(keys) == MaxKeys {
			return nil, fmt.Errorf("key set holds more than %d (MaxKeys) usable keys", MaxKeys)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("key set holds no usable public signing key for %s", strings.Join(algs, ", "))
	}
	return keys, nil
}

func usableKey(raw json.RawMessage, algs []string) (jose.JSONWebKey, bool) {
	var meta struct {
		Use string `json:"use"`
		Alg string `json:"alg"`
	}
	if jsonv2.Unmarshal(raw, &meta) != nil {
		return jose.JSONWebKey{}, false
	}
	if meta.Use != "" && meta.Use != "sig" || meta.Alg != "" && !slices.Contains(algs, meta.Alg) {
		return jose.JSONWebKey{}, false
	}
	var k jose.JSONWebKey
	if k.UnmarshalJSON(raw) != nil || !k.Valid() {
		return jose.JSONWebKey{}, false
	}
	switch pub := k.Key.(type) {
	case *rsa.PublicKey:
		if pub.N.BitLen() < MinRSABits {
			return jose.JSONWebKey{}, false
		}
	case *ecdsa.PublicKey, ed25519.PublicKey:
	default:
		// Symmetric ("oct") keys cannot come from a public key set, and a private key
		// published by mistake is not trusted either.
		return jose.JSONWebKey{}, false
	}
	return k, true
}

// keyIDs lists the key ids of keys, in order; a key without one shows as "".
func keyIDs(keys []jose.JSONWebKey) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.KeyID
	}
	return out
}
