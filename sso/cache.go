package sso

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/sios-project/sios/internal/files"
)

// cacheVersion marks the key cache format. A file of another version is ignored (and
// replaced by the next fetch).
const cacheVersion = "sios-oidc-keys/1"

// cacheFile is an issuer's key cache: the key set exactly as last fetched (compacted),
// where it came from and when, so that a node restarted while the issuer is
// unreachable still checks its users' tokens.
type cacheFile struct {
	V       string          `json:"v"`
	Issuer  string          `json:"issuer"`
	JWKSURI string          `json:"jwks_uri"`
	Fetched time.Time       `json:"fetched"`
	JWKS    json.RawMessage `json:"jwks"`
}

// cachePath is the cache file of the issuer named name in dir.
func cachePath(dir, name string) string {
	return filepath.Join(dir, name+".jwks.json")
}

// writeCache stores a fetched key set atomically: a temporary file, fsynced, renamed
// over the old one, and the directory fsynced (files.Replace), so that a crash
// leaves the old cache or the new one, never a torn file.
func writeCache(path string, c cacheFile) error {
	var jwks bytes.Buffer
	if err := json.Compact(&jwks, c.JWKS); err != nil {
		return fmt.Errorf("key cache %s: %v", path, err)
	}
	if jwks.Len() > MaxJWKSBytes {
		return fmt.Errorf("key cache %s: key set of %d bytes, more than %d (MaxJWKSBytes)", path, jwks.Len(), MaxJWKSBytes)
	}
	c.V, c.JWKS = cacheVersion, jwks.Bytes()
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	// No HTML escaping: the stored key set is never longer than the fetched one, so the
	// reading side's MaxJWKSBytes holds for whatever the writing side accepted.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(c); err != nil {
		return fmt.Errorf("key cache %s: %v", path, err)
	}
	return files.Replace(path, out.Bytes(), 0o600)
}

// readCache loads the cache at path if it holds keys of issuerURL (and, when jwksURI is
// configured, from that jwks_uri). An absent file, or one for another issuer, gives
// nil and no error: the keys are fetched instead.
func readCache(path, issuerURL, jwksURI string, algs []string) (*cacheFile, []jose.JSONWebKey, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("key cache %s: %v", path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxCacheFileBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("key cache %s: %v", path, err)
	}
	if len(b) > MaxCacheFileBytes {
		return nil, nil, fmt.Errorf("key cache %s is more than %d bytes (MaxCacheFileBytes); delete it and let the node fetch the keys again", path, MaxCacheFileBytes)
	}
	c, keys, err := parseCache(b, issuerURL, jwksURI, algs)
	if err != nil {
		return nil, nil, fmt.Errorf("key cache %s: %v; delete it and let the node fetch the keys again", path, err)
	}
	return c, keys, nil
}

// parseCache decodes a cache file's bytes. A well-formed cache of another version,
// issuer or jwks_uri gives nil, nil, nil.
func parseCache(b []byte, issuerURL, jwksURI string, algs []string) (*cacheFile, []jose.JSONWebKey, error) {
	var c cacheFile
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, nil, errors.New("not a key cache file")
	}
	if c.V != cacheVersion || c.Issuer != issuerURL || (jwksURI != "" && c.JWKSURI != jwksURI) {
		return nil, nil, nil
	}
	keys, err := parseJWKS(c.JWKS, algs)
	if err != nil {
		return nil, nil, err
	}
	return &c, keys, nil
}
