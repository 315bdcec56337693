// Package succession is the protocol by which a role (a Caldicott Guardian, a SIRO, a
// data-protection officer) passes from a holder who has disappeared, or been removed, to
// a successor, with no central controller: nodes observe, sign what they observe, and a
// handover happens only when k independent observers agree, or k admins remove the
// holder.
//
// It holds the formats, each canonical JSON (RFC 8785), versioned and signed under its
// own domain with the signing node's ML-DSA-65 and Ed25519 keys (identity.Sign): the
// role charter (role-charter/1), the events (role-presence/1, role-suspicion/1,
// role-refutation/1, role-acceptance/1, role-removal/1), the handover certificate
// assembled from k of them (role-certificate/1), the sealed letter (role-letter/1), a
// released share of it (role-share/1) and a node's HPKE key statement (node-kem/1); the
// state machine (State), a pure function of a charter, the events a node holds and the
// time; and the letter's sealing, release and opening. It does no I/O but for the KEM
// key file, and knows nothing of HTTP, gossip or storage: the fleet carries the bytes,
// the node calls these functions.
//
// Guarantees:
//   - every parser (jcs.Unmarshal, then the format's own checks) accepts only bytes
//     that are exactly their own canonical encoding, with exactly the members of the format (no duplicate, unknown, missing or
//     differently cased member), within the caps of limits.go, which the writers
//     enforce too; re-encoding what was parsed gives back the input;
//   - a handover on suspicion needs k suspicions signed by k distinct observer nodes
//     of the charter in force, and none cancelled by a presence or refutation signed by
//     the effective time: fewer than k observers (a partition, a lying observer, one
//     observer signing many times) never hand a role over;
//   - State depends on the set of events only, not their order: two nodes holding the
//     same events compute the same state and the same certificate bytes;
//   - a sealed letter needs k shares to open; each share opens only with the key of the
//     node it was sealed to, and only for the letter and recipient it was sealed for.
//
// docs/succession.md specifies the protocol, the formats member by member and the test
// vectors in testdata/vectors.json; anything here that changes bytes changes that
// document.
package succession
