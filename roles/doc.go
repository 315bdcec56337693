// Package roles runs the succession protocol (package succession, docs/succession.md) on
// a node: it keeps every chartered role of the node's institution, computes each role's
// state from the documents the fleet carries, acts on it, and tells the rest of the
// node who holds what.
//
// A Keeper reads the succession documents carried in the feeds of its own institution's
// nodes (fleet record kinds role and kem), verifies each on receipt (a document whose
// signature does not verify, or whose signer is not a node of the institution, never
// counts, and is recorded once as role.reject), and evaluates succession.State for every
// role. From those states it:
//
//   - gives policy the holders: Overlay sets a principal's chartered roles to those the
//     fleet's records say it holds, and Facts describes a role to Cedar;
//   - observes presence: Active notes the charter holder's authenticated activity on
//     this node; the loop publishes a signed presence when the protocol says it is due
//     (succession.PresenceDue: at once while a suspicion stands, else at most once per
//     half of suspect_after);
//   - watches, on the nodes a charter names as observers: it signs a suspicion when
//     succession.SuspicionDue says so, and wakes when State.NextChange or the next
//     suspicion falls due;
//   - records what its evaluation shows first: a handover (with the certificate's
//     evidence) and each cascade;
//   - releases, as an observer, its share of the holder's sealed letter to the node of
//     the successor who accepted.
//
// It signs, on a principal's behalf, the charters, check-ins, refutations, acceptances,
// removals and letters that the caller (package invoke for the API, package admin for
// the operator) has authorised.
//
// Every step the node takes is recorded in its own ledger before it takes effect: a
// document is published only after its record is durable, and a letter is returned
// only after its opening is recorded. A record that cannot be written means the step
// does not happen (and the loop tries again). What the node has recorded of derived
// steps (handovers, cascades, rejections, releases) is kept in DATA/roles/marks.json,
// so that a restart records nothing twice.
package roles
