package decision

import (
	"fmt"
	"strings"

	"github.com/sios-project/sios/identity"
)

// AnyNode is the node part of a member that any peer offering the brain may fill.
const AnyNode = "*"

// Member is one seat on a panel, written BRAIN (the origin's own brain), BRAIN@NODEID
// (that peer's brain) or BRAIN@* (the brain on any one peer: see Count for which
// ballot fills the seat when more than one peer answers).
type Member struct {
	Brain string
	Node  string // "" for the origin's own brain, AnyNode, or a node id
}

// ParseMember reads a member as a panel or request writes it.
func ParseMember(s string) (Member, error) {
	brain, node, remote := strings.Cut(s, "@")
	if !validBrainID(brain) {
		return Member{}, fmt.Errorf("member %q: brain %q is not 1 to %d bytes of a-z, 0-9 and '-', not starting or ending with '-' (MaxIDLen)", short(s), short(brain), MaxIDLen)
	}
	if !remote {
		return Member{Brain: brain}, nil
	}
	if node != AnyNode && !validNodeID(node) {
		return Member{}, fmt.Errorf("member %q: after '@' comes a node id (%s_ and 26 base32 characters) or %q", short(s), identity.NodePrefix, AnyNode)
	}
	return Member{Brain: brain, Node: node}, nil
}

// String is the member as panels and requests write it.
func (m Member) String() string {
	if m.Node == "" {
		return m.Brain
	}
	return m.Brain + "@" + m.Node
}

// Local reports whether the member is a brain of the origin itself.
func (m Member) Local() bool { return m.Node == "" }

// seatOf returns the member of members a ballot from node for brain fills in a
// decision made by origin: the exact member (BRAIN when node is the origin, else
// BRAIN@NODE) if the panel names it, else BRAIN@* for a peer. ok is false when the
// panel has no seat for the ballot.
func seatOf(members []string, origin, node, brain string) (seat string, ok bool) {
	exact := brain
	if node != origin {
		exact = brain + "@" + node
	}
	wildcard := ""
	for _, m := range members {
		if m == exact {
			return m, true
		}
		if node != origin && m == brain+"@"+AnyNode {
			wildcard = m
		}
	}
	return wildcard, wildcard != ""
}
