// Package policy is sios's deterministic governance: Cedar policies over principals,
// their clearances and the classifications of brains, memories and peers.
//
// What it guarantees:
//
//   - Deterministic: a Decision depends only on the loaded policies and the Request.
//     The engine holds no other state, reads nothing during a decision, and sorts
//     everything it reports.
//   - Deny by default: a request is allowed only if a permit matches it. A request the
//     engine cannot judge (a zero Level, an empty tenant, an unknown action) is denied.
//   - Forbids win: one forbid that fires denies the request, whatever permits match,
//     in any file. A forbid that cannot be evaluated counts as fired.
//   - No fallback to allow: Load returns any problem with the policy files as an error
//     naming the file and line; there is no partial or permissive engine.
//
// The entity model, the actions, the request context and the default policies
// (default.cedar, embedded) are documented in docs/policy.md.
package policy
