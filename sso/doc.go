// Package sso signs in the users of an organisation's identity provider: it checks
// OpenID Connect ID tokens and JWT access tokens from the issuers configured in the
// "oidc" section of config.json, and maps each user's claims (groups, roles, custom
// claims) to a tenant, a clearance and roles by the operator's rules.
//
// It guarantees:
//
//   - A token is accepted only if its "iss" is a configured issuer, its "aud" names
//     one of that issuer's audiences, it is unexpired, and it is signed with an
//     allowed asymmetric algorithm by a key from that issuer's key set (checked by
//     github.com/coreos/go-oidc). Anything else is ErrInvalidToken.
//   - Keys are fetched only from the configured issuer (its discovery document and the
//     jwks_uri on its own origin, or a configured jwks_uri), only through the
//     *http.Client the node passes (built on the egress guard), with every read
//     bounded (limits.go). They are cached on disk, written atomically, so a node
//     restarted while the issuer is unreachable keeps checking tokens; a failed
//     fetch never drops the keys in use. A token naming an unknown key id causes at
//     most one fetch per KeyRefetchInterval.
//   - Mapping is deterministic: rules are tried in order and the first that matches
//     decides tenant, clearance and roles; nothing else is granted. A user no rule
//     admits gets nothing (ErrUnmapped).
//   - Principal ids are "oidc:ISSUER-NAME:SUBJECT", which no locally stored principal
//     id can equal.
//   - No error and no Identity holds the token.
//
// See docs/sso.md for the configuration.
package sso
