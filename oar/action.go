package oar

// The actions a node writes into its records' action member, one constant each, so
// that every place that writes a record names its action from this list. Only append:
// a published action never changes meaning. docs/audit-actions.md describes each one,
// and a test keeps that table and this list the same and refuses action strings
// written anywhere else. ('sios audit append --action' lets an operator write any
// other action of their own.)
const (
	ActionNodeInit        = "node.init"          // a node identity was created
	ActionNodeStart       = "node.start"         // the node started serving
	ActionPrincipalAdd    = "principal.add"      // a principal was added (never its key)
	ActionAuthRefuse      = "auth.refuse"        // requests refused at the API's door (no key, a wrong key), per address
	ActionBrainInvoke     = "brain.invoke"       // a request for a brain: admitted or refused
	ActionBrainComplete   = "brain.complete"     // what an admitted request came to
	ActionBrainEmbed      = "brain.embed"        // an embeddings request
	ActionToolCall        = "tool.call"          // a tool call a model asked for: run or refused
	ActionToolResult      = "tool.result"        // what a tool that ran returned, linked to its call
	ActionMemoryWrite     = "memory.write"       // a memory was stored (or the write refused)
	ActionMemorySearch    = "memory.search"      // a search of memory, with the ids it returned
	ActionMemoryExport    = "memory.export"      // a subject's memories exported
	ActionMemoryForget    = "memory.forget"      // a subject's memories and key destroyed
	ActionMemoryExpire    = "memory.expire"      // memories forgotten by the retention policy
	ActionEgressRefuse    = "egress.refuse"      // an outbound connection refused before it was made
	ActionFleetRefuse     = "fleet.refuse"       // a peer refused admission to the fleet
	ActionFleetRefuseCall = "fleet.refuse-call"  // a peer's remote call refused before it ran
	ActionReplicaFork     = "audit.replica-fork" // a source presented another history to this replica
	ActionDecisionRequest = "decision.request"   // a decision asked of a panel: its signed request, each member authorised or refused
	ActionDecisionBallot  = "decision.ballot"    // a member's signed ballot, recorded by the node that cast it
	ActionDecisionOutcome = "decision.outcome"   // a decision's signed outcome: the request and every counted ballot as signed
)
