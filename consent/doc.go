// Package consent holds consent grants: a principal's signed, scoped, expiring
// permission for its tenant's data to cross an institution's boundary, and the rules by
// which a node checks, counts, revokes and honours one.
//
// A grant (consent-grant/1) is canonical JSON (RFC 8785) signed by the node where the
// data lives (its origin) with both of that node's keys, ML-DSA-65 and Ed25519, under
// its own domain string. The format, the checks each side makes, the release rule and
// the test vectors are published in docs/consent.md.
//
// What it guarantees:
//
//   - Exact bytes: Parse accepts only a grant that is its own canonical encoding, within
//     MaxGrantSize, with exactly the members of consent-grant/1 and every member valid;
//     encoding what it returns gives back the input byte for byte. Sign writes only what
//     Parse accepts; the caps in limits.go bound both.
//   - Verification is a pure function of the grant, the origin's keys and the use:
//     Verify refuses with a typed *Error (its Code) a forged, expired, wrongly
//     addressed, out-of-scope or over-classified use, and nothing else is consulted.
//   - Revocation and use counts are decided at the origin alone, by its Store: Use
//     makes a use durable (fsynced) before it returns, so data is never released on a
//     use that a crash could forget; revoked, expired and used-up grants are refused.
//   - The release rule (ReleaseMax) is the minimum of the grant's maximum, the
//     grantor's clearance where the data is held, the requester's clearance where she
//     works and the receiving node's accreditation; Releasable keeps only memories of
//     the grantor's tenant and the grant's subjects at or below it.
//
// The package does no networking and knows nothing of the node: the pipeline, the APIs
// and the CLI decide when a grant is needed and record what happened.
package consent
