// Package decision is how several brains, on this node and its peers, decide one
// question together, and the evidence of it: the formats, their signatures and
// checks, and the rules that turn ballots into an outcome. It is pure: no I/O but
// reading panel files, no clocks, no randomness but a request's nonce.
//
// An origin node signs a decision request (decision-request/1): the question's digest,
// a closed set of options, a rule and a panel of members. Each member's node runs its
// brain on the question, reads the model's structured answer (ResponseFormat,
// ParseAnswer) and signs a ballot (ballot/1) naming the request's hash. The origin
// counts the ballots (Count) and signs the outcome (decision-outcome/1), which holds
// the request and every counted ballot exactly as signed. The formats are published in
// docs/decisions.md with test vectors in testdata/vectors.json.
//
// Guarantees:
//   - Every format is canonical JSON (RFC 8785) with exactly its own members, read
//     strictly (jcs.Unmarshal): parsing then encoding gives back the exact input, and
//     sizes are capped by limits.go on both sides.
//   - Each format is signed with both of a node's keys (ML-DSA-65 and Ed25519) under
//     its own domain, as fleet envelopes are; a ballot counts only after its signature
//     verifies under its node's enrolled keys.
//   - Count is a pure function of the request, the set of ballots and the keys: the
//     order in which ballots arrive never changes the outcome, and ties and missed
//     quorums are outcomes (StatusTie, StatusNoQuorum), never broken by order or chance.
//   - VerifyOutcome re-derives an outcome from its own bytes and the nodes' keys.
package decision
