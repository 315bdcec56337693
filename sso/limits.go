package sso

import "time"

// Caps on bytes from issuers, bearer tokens and configuration, in one place. The same
// cap applies where bytes are written (the key cache) and where they are read back;
// every error that enforces one names it.
const (
	// MaxTokenBytes is the longest bearer token Authenticate looks at. An Entra ID
	// token carrying a few hundred group ids is about 10 KB.
	MaxTokenBytes = 32 << 10
	// MaxDiscoveryBytes is the largest discovery document read from an issuer.
	MaxDiscoveryBytes = 256 << 10
	// MaxJWKSBytes is the largest key set (JWKS) read from an issuer or from the cache.
	MaxJWKSBytes = 256 << 10
	// MaxCacheFileBytes is the largest key cache file read back: a key set and a few
	// fields around it.
	MaxCacheFileBytes = MaxJWKSBytes + 8<<10
	// MaxKeys is the most signing keys kept from one key set.
	MaxKeys = 64
	// MinRSABits is the smallest RSA key accepted from a key set.
	MinRSABits = 2048

	// MaxConfigBytes is the largest "oidc" configuration section ParseConfig reads.
	MaxConfigBytes = 1 << 20
	// MaxIssuers is the most issuers one node accepts tokens from.
	MaxIssuers = 32
	// MaxRules is the most mapping rules of one issuer; every sign-in may evaluate
	// all of them.
	MaxRules = 1000
	// MaxConditions is the most claims one rule's "when" tests.
	MaxConditions = 16
	// MaxRuleValues is the most values one condition accepts.
	MaxRuleValues = 256
	// MaxRoles is the most roles one rule grants.
	MaxRoles = 64
	// MaxTenantValues is the most entries in claims.tenant.values.
	MaxTenantValues = 1000
	// MaxClaimPathSegments is the deepest claim path ("realm_access.roles" has 2).
	MaxClaimPathSegments = 8
	// MaxClaimPathBytes is the longest claim path as written in the configuration.
	MaxClaimPathBytes = 256
	// MaxURLBytes is the longest issuer or jwks_uri URL.
	MaxURLBytes = 2048
	// MaxSubjectBytes is the longest principal claim value (the user's id at the
	// issuer) accepted; longer is refused, never truncated.
	MaxSubjectBytes = 255
	// MaxTokenIDBytes is the longest "jti" passed on for the audit record; a longer
	// one is left out.
	MaxTokenIDBytes = 128
)

// Timing of key fetches.
const (
	// FetchTimeout bounds one fetch of the discovery document and key set together.
	FetchTimeout = 10 * time.Second
	// KeyRefetchInterval is the least time between two fetches of one issuer's keys
	// (an unknown "kid" asks for one; the periodic refresh is one too), so that tokens
	// with made-up key ids cannot make the node hammer the issuer.
	KeyRefetchInterval = time.Minute
	// DefaultRefresh is how often an issuer's keys are fetched when its "refresh" is
	// not set; MinRefresh and MaxRefresh bound what may be set.
	DefaultRefresh = time.Hour
	MinRefresh     = time.Minute
	MaxRefresh     = 7 * 24 * time.Hour
	// MaxRedirects is the most redirects followed on one fetch, all on the issuer's
	// own origin.
	MaxRedirects = 3
)
