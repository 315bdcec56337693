package oar

// The actions a node writes into its records' action member, one constant each, so
// that every place that writes a record names its action from this list. Only append:
// a published action never changes meaning. docs/audit-actions.md describes each one,
// and a test keeps that table and this list the same and refuses action strings
// written anywhere else. ('sios audit append --action' lets an operator write any
// other action of their own.) Each is a declaration of its own, so that adding one
// never realigns the others.

// ActionNodeInit: a node identity was created.
const ActionNodeInit = "node.init"

// ActionNodeStart: the node started serving.
const ActionNodeStart = "node.start"

// ActionNodeReload: the operator reloaded policies, brains and trust (SIGHUP); recorded
// before the new set takes effect, or with the error that kept the old one.
const ActionNodeReload = "node.reload"

// ActionTrustAddRoot: an institution's root was pinned.
const ActionTrustAddRoot = "trust.add-root"

// ActionTrustAddEK: TPM endorsement keys (by hash, or EK CAs) were pinned for an
// institution's nodes.
const ActionTrustAddEK = "trust.add-ek"

// ActionTrustRemoveEK: TPM endorsement keys (by hash, or EK CAs) were un-pinned for an
// institution's nodes, which attest again under the EKs still pinned.
const ActionTrustRemoveEK = "trust.remove-ek"

// ActionTrustRemove: an institution's root was un-pinned, and its nodes evicted.
const ActionTrustRemove = "trust.remove"

// ActionTrustFailed: a recorded trust change could not be made.
const ActionTrustFailed = "trust.failed"

// ActionPrincipalAdd: a principal was added (never its key).
const ActionPrincipalAdd = "principal.add"

// ActionPrincipalRemove: a principal was removed: its keys stop at once.
const ActionPrincipalRemove = "principal.remove"

// ActionPrincipalDisable: a principal was disabled: its keys stop at once.
const ActionPrincipalDisable = "principal.disable"

// ActionPrincipalEnable: a disabled principal was enabled again.
const ActionPrincipalEnable = "principal.enable"

// ActionPrincipalRotateKey: a principal's named key was issued anew (never the key).
const ActionPrincipalRotateKey = "principal.rotate-key"

// ActionPrincipalSet: a principal's clearance or roles changed.
const ActionPrincipalSet = "principal.set"

// ActionSSOSignIn: the first request of a user signed in by an OIDC identity provider:
// issuer, subject, the mapping rule (never the token).
const ActionSSOSignIn = "sso.sign-in"

// ActionSSOKeys: an identity provider's signing keys were fetched or loaded, or the
// fetch failed.
const ActionSSOKeys = "sso.keys"

// ActionAuthRefuse: requests refused at the API's door (no key, a wrong key), per address.
const ActionAuthRefuse = "auth.refuse"

// ActionBrainInvoke: a request for a brain: admitted or refused.
const ActionBrainInvoke = "brain.invoke"

// ActionBrainComplete: what an admitted request came to.
const ActionBrainComplete = "brain.complete"

// ActionBrainEmbed: an embeddings request.
const ActionBrainEmbed = "brain.embed"

// ActionToolCall: a tool call a model asked for: run or refused.
const ActionToolCall = "tool.call"

// ActionToolResult: what a tool that ran returned, linked to its call.
const ActionToolResult = "tool.result"

// ActionMemoryWrite: a memory was stored (or the write refused).
const ActionMemoryWrite = "memory.write"

// ActionMemorySearch: a search of memory, with the ids it returned.
const ActionMemorySearch = "memory.search"

// ActionMemoryExport: a subject's memories exported.
const ActionMemoryExport = "memory.export"

// ActionMemoryForget: a subject's memories and key destroyed.
const ActionMemoryForget = "memory.forget"

// ActionMemoryExpire: memories forgotten by the retention policy.
const ActionMemoryExpire = "memory.expire"

// ActionEgressRefuse: an outbound connection refused before it was made.
const ActionEgressRefuse = "egress.refuse"

// ActionFleetRefuse: a peer refused admission to the fleet.
const ActionFleetRefuse = "fleet.refuse"

// ActionFleetRefuseCall: a peer's remote call refused before it ran.
const ActionFleetRefuseCall = "fleet.refuse-call"

// ActionReplicaFork: a source presented another history to this replica.
const ActionReplicaFork = "audit.replica-fork"

// ActionFleetAttest: a peer's TPM answered this node's challenge: attested now.
const ActionFleetAttest = "fleet.attest"

// ActionConsoleSignIn: a web console session began, signed in with an API key or by an
// OIDC identity provider (never the key, the token or the session id).
const ActionConsoleSignIn = "console.sign-in"

// ActionConsoleSignOut: a web console session was ended (signed out, or replaced by a
// newer sign-in of its principal).
const ActionConsoleSignOut = "console.sign-out"

// ActionAuditExport: an evidence bundle of this node's log was handed out through the
// web console.
const ActionAuditExport = "audit.export"

// ActionConsentGrant: a principal made a consent grant (or was refused one).
const ActionConsentGrant = "consent.grant"

// ActionConsentRevoke: a consent grant was revoked.
const ActionConsentRevoke = "consent.revoke"

// ActionConsentUse: a use of a grant, durable before the data it allows leaves.
const ActionConsentUse = "consent.use"

// ActionConsentRelease: memories released under a grant to another institution (or refused).
const ActionConsentRelease = "consent.release"

// ActionConsentReceive: memories received under a grant from their holder (or its refusal).
const ActionConsentReceive = "consent.receive"

// ActionDecisionRequest: a decision asked of a panel: its signed request, each member
// authorised or refused.
const ActionDecisionRequest = "decision.request"

// ActionDecisionBallot: a member's signed ballot, recorded by the node that cast it.
const ActionDecisionBallot = "decision.ballot"

// ActionDecisionOutcome: a decision's signed outcome: the request and every counted
// ballot as signed.
const ActionDecisionOutcome = "decision.outcome"

// ActionRoleDefine: a role charter signed by this node and published to the fleet (or a
// definition refused).
const ActionRoleDefine = "role.define"

// ActionRolePresence: this node saw a role's holder active and published a signed
// presence.
const ActionRolePresence = "role.presence"

// ActionRoleCheckin: a holder's explicit check-in that published no presence (none was
// due), or a refused one.
const ActionRoleCheckin = "role.checkin"

// ActionRoleSuspect: this node, an observer, signed a suspicion that the holder is gone.
const ActionRoleSuspect = "role.suspect"

// ActionRoleRefute: a holder's refutation signed by this node (or a refused one).
const ActionRoleRefute = "role.refute"

// ActionRoleAccept: a successor's acceptance signed by this node (or a refused one).
const ActionRoleAccept = "role.accept"

// ActionRoleRemove: an admin's removal of the holder signed by this node (or a refused one).
const ActionRoleRemove = "role.remove"

// ActionRoleHandover: this node's evaluation first showed a role handed over: the
// certificate and its evidence.
const ActionRoleHandover = "role.handover"

// ActionRoleCascade: this node's evaluation first showed an offer pass to the next
// successor.
const ActionRoleCascade = "role.cascade"

// ActionRoleReject: a succession document from the fleet that does not count: forged,
// from outside the institution, or not valid for the charter.
const ActionRoleReject = "role.reject"

// ActionRoleLetterDeposit: a holder's sealed letter published (or a refused deposit).
const ActionRoleLetterDeposit = "role.letter-deposit"

// ActionRoleLetterRelease: this observer released its letter share to the successor's node.
const ActionRoleLetterRelease = "role.letter-release"

// ActionRoleLetterOpen: the successor opened the letter on this node (or was refused).
const ActionRoleLetterOpen = "role.letter-open"
