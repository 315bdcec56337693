package sso

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// KeyEvent reports one fetch of an issuer's keys, or the loading of its cache, for the
// node to audit. Err set: the fetch failed and the keys in use did not change.
type KeyEvent struct {
	Issuer  string    // the configured name
	JWKSURI string    // where the keys came from
	Fetched time.Time // when the keys in use were fetched
	KeyIDs  []string  // the key ids in use after the event
	Added   []string  // key ids that were not in use before
	Removed []string  // key ids no longer in use
	Cached  bool      // the keys were loaded from the disk cache, not fetched
	Err     error
}

// keySet holds one issuer's verification keys. It is the oidc.KeySet go-oidc's
// verifier checks signatures with: keys come from the disk cache at start, from the
// issuer on a periodic refresh, and from the issuer when a token names a key id not
// held (at most once per KeyRefetchInterval). A failed fetch keeps the keys in use.
type keySet struct {
	is     *issuer
	algs   []jose.SignatureAlgorithm
	client *http.Client
	path   string // the cache file
	now    func() time.Time
	onKeys func(KeyEvent)

	fetchMu sync.Mutex // held for a whole fetch: one fetch per issuer at a time

	mu      sync.RWMutex
	keys    []jose.JSONWebKey // guarded by mu
	jwksURI string            // guarded by mu
	fetched time.Time         // guarded by mu; when keys were fetched; zero: no keys
	tried   time.Time         // guarded by mu; the last fetch attempt
	lastErr error             // guarded by mu; the last fetch's or cache load's failure
}

func newKeySet(is *issuer, client *http.Client, cacheDir string, now func() time.Time, onKeys func(KeyEvent)) *keySet {
	k := &keySet{is: is, client: client, path: cachePath(cacheDir, is.name), now: now, onKeys: onKeys}
	for _, a := range is.algorithms {
		k.algs = append(k.algs, jose.SignatureAlgorithm(a))
	}
	return k
}

// loadCache installs the cached keys, if any. A damaged cache is reported (Status,
// onKeys) and otherwise ignored: the keys are fetched instead.
func (k *keySet) loadCache() {
	c, keys, err := readCache(k.path, k.is.url, k.is.jwksURI, k.is.algorithms)
	switch {
	case err != nil:
		k.mu.Lock()
		k.lastErr = err
		k.mu.Unlock()
		k.report(KeyEvent{Issuer: k.is.name, Cached: true, Err: err})
	case c != nil:
		k.mu.Lock()
		k.keys, k.jwksURI, k.fetched = keys, c.JWKSURI, c.Fetched
		k.mu.Unlock()
		k.report(KeyEvent{Issuer: k.is.name, JWKSURI: c.JWKSURI, Fetched: c.Fetched, KeyIDs: keyIDs(keys), Added: keyIDs(keys), Cached: true})
	}
}

func (k *keySet) report(e KeyEvent) {
	if k.onKeys != nil {
		k.onKeys(e)
	}
}

// VerifySignature implements oidc.KeySet. go-oidc has already refused algorithms
// outside the allowlist; the parse here enforces the same list again.
func (k *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(raw, k.algs)
	if err != nil {
		return nil, fmt.Errorf("malformed token: %v", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("token does not carry exactly one signature")
	}
	hdr := jws.Signatures[0].Header
	payload, known, err := verifyWith(k.snapshot(), jws, hdr)
	if err == nil || known {
		// A key with this id is held and does not verify the token: a forgery or a
		// damaged token, which must not make the node fetch anything.
		return payload, err
	}
	// An unknown key id: the issuer may have rotated its keys.
	ferr := k.refetch(ctx)
	payload, _, err = verifyWith(k.snapshot(), jws, hdr)
	if err == nil {
		return payload, nil
	}
	if ferr != nil {
		return nil, fmt.Errorf("%v, and %v", err, ferr)
	}
	return nil, err
}

func (k *keySet) snapshot() []jose.JSONWebKey {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.keys
}

// verifyWith checks jws against the keys that carry its key id (every key when it
// names none). known reports whether any key carried that id.
func verifyWith(keys []jose.JSONWebKey, jws *jose.JSONWebSignature, hdr jose.Header) (payload []byte, known bool, err error) {
	if len(keys) == 0 {
		return nil, false, errors.New("no keys of this issuer are held yet (it has not been reachable since the node first started)")
	}
	for i := range keys {
		key := &keys[i]
		if hdr.KeyID != "" && key.KeyID != hdr.KeyID {
			continue
		}
		known = hdr.KeyID != ""
		if key.Algorithm != "" && key.Algorithm != hdr.Algorithm {
			continue
		}
		if p, err := jws.Verify(key); err == nil {
			return p, true, nil
		}
	}
	if known {
		return nil, true, fmt.Errorf("signature does not verify with key %q", clip(hdr.KeyID))
	}
	if hdr.KeyID == "" {
		return nil, false, errors.New("the token names no key id and no held key verifies it")
	}
	return nil, false, fmt.Errorf("no key %q is held", clip(hdr.KeyID))
}

// refetch fetches the keys unless a fetch was attempted less than KeyRefetchInterval
// ago.
func (k *keySet) refetch(ctx context.Context) error {
	k.fetchMu.Lock()
	defer k.fetchMu.Unlock()
	k.mu.RLock()
	tried := k.tried
	k.mu.RUnlock()
	if since := k.now().Sub(tried); !tried.IsZero() && since < KeyRefetchInterval {
		return fmt.Errorf("the keys were fetched %v ago; they are fetched at most once per %v (KeyRefetchInterval)", since.Round(time.Second), KeyRefetchInterval)
	}
	return k.fetchLocked(ctx)
}

// due reports whether the periodic refresh should fetch: the keys are older than the
// refresh interval (or absent) and the last attempt was at least KeyRefetchInterval
// ago.
func (k *keySet) due(now time.Time) bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if !k.tried.IsZero() && now.Sub(k.tried) < KeyRefetchInterval {
		return false
	}
	return k.fetched.IsZero() || now.Sub(k.fetched) >= k.is.refresh
}

// fetch fetches the keys now.
func (k *keySet) fetch(ctx context.Context) error {
	k.fetchMu.Lock()
	defer k.fetchMu.Unlock()
	return k.fetchLocked(ctx)
}

// fetchLocked fetches the discovery document (unless jwks_uri is configured) and the
// key set, writes the cache and installs the keys. The caller holds fetchMu. A fetch
// once begun is not cut short by the caller's cancellation, only by FetchTimeout, so
// that an impatient client cannot waste the issuer's rate allowance.
func (k *keySet) fetchLocked(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), FetchTimeout)
	defer cancel()
	now := k.now()
	k.mu.Lock()
	k.tried = now
	k.mu.Unlock()

	jwksURI, keys, raw, err := k.download(ctx)
	if err != nil {
		err = fmt.Errorf("fetching the keys of issuer %s (%s): %w", k.is.name, k.is.url, err)
		k.mu.Lock()
		k.lastErr = err
		k.mu.Unlock()
		k.report(KeyEvent{Issuer: k.is.name, JWKSURI: jwksURI, Err: err})
		return err
	}
	werr := writeCache(k.path, cacheFile{Issuer: k.is.url, JWKSURI: jwksURI, Fetched: now.UTC(), JWKS: raw})
	k.mu.Lock()
	before := keyIDs(k.keys)
	k.keys, k.jwksURI, k.fetched, k.lastErr = keys, jwksURI, now, werr
	k.mu.Unlock()
	after := keyIDs(keys)
	k.report(KeyEvent{Issuer: k.is.name, JWKSURI: jwksURI, Fetched: now, KeyIDs: after,
		Added: missingFrom(after, before), Removed: missingFrom(before, after), Err: werr})
	// The keys are in use even if the cache could not be written; the error says so.
	return werr
}

// missingFrom lists the ids in a that are not in b.
func missingFrom(a, b []string) []string {
	var out []string
	for _, id := range a {
		if !slices.Contains(b, id) {
			out = append(out, id)
		}
	}
	return out
}

func (k *keySet) download(ctx context.Context) (jwksURI string, keys []jose.JSONWebKey, raw []byte, err error) {
	jwksURI = k.is.jwksURI
	if jwksURI == "" {
		wellKnown := strings.TrimSuffix(k.is.url, "/") + "/.well-known/openid-configuration"
		doc, err := k.get(ctx, wellKnown, MaxDiscoveryBytes, "MaxDiscoveryBytes")
		if err != nil {
			return "", nil, nil, err
		}
		if jwksURI, err = parseDiscovery(doc, k.is.url); err != nil {
			return "", nil, nil, err
		}
	}
	raw, err = k.get(ctx, jwksURI, MaxJWKSBytes, "MaxJWKSBytes")
	if err != nil {
		return jwksURI, nil, nil, err
	}
	keys, err = parseJWKS(raw, k.is.algorithms)
	if err != nil {
		return jwksURI, nil, nil, fmt.Errorf("%s: %v", jwksURI, err)
	}
	return jwksURI, keys, raw, nil
}

// get fetches url through the caller's client, reading at most limit bytes.
func (k *keySet) get(ctx context.Context, url string, limit int, limitName string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if resp.ContentLength > int64(limit) {
		return nil, fmt.Errorf("GET %s: %d bytes, more than %d (%s)", url, resp.ContentLength, limit, limitName)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %v", url, err)
	}
	if len(b) > limit {
		return nil, fmt.Errorf("GET %s: more than %d bytes (%s)", url, limit, limitName)
	}
	return b, nil
}

// status describes the key set for IssuerStatus.
func (k *keySet) status() (keys int, jwksURI string, fetched, tried time.Time, lastErr error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return len(k.keys), k.jwksURI, k.fetched, k.tried, k.lastErr
}
