package decision

import "strings"

// Outcome statuses. Only append to this list: a published status never changes meaning.
const (
	// StatusDecided: the rule picked one option.
	StatusDecided = "decided"
	// StatusTie: two or more options qualify equally and the rule cannot choose
	// between them. Ties are never broken by order of arrival or by chance.
	StatusTie = "tie"
	// StatusNoQuorum: no option qualifies under the rule (no votes, no option with
	// Quorum votes, no unanimity, every voted option vetoed), or the counted ballots
	// do not meet the panel's MinNodes or MinInstitutions.
	StatusNoQuorum = "no_quorum"
)

var statuses = []string{StatusDecided, StatusTie, StatusNoQuorum}

// Constraints a panel can leave unmet (Outcome.Unmet), named as the panel names them.
const (
	UnmetMinNodes        = "min_nodes"
	UnmetMinInstitutions = "min_institutions"
)

// vote is one counted ballot as the rules see it.
type vote struct {
	seat   string // the panel member whose seat the ballot filled
	choice string
}

// tallied is what a rule made of the votes.
type tallied struct {
	tally       map[string]int // every option, with its count (or weight)
	abstentions int
	vetoed      []string // options vetoed, in the request's order (RuleVeto only)
	status      string
	result      string // the option decided; "" unless status is StatusDecided
}

// apply runs the request's rule over the counted votes. It is a pure function of the
// request and the set of votes: the order of votes does not matter, since it only
// sums them.
func apply(req *Request, votes []vote) tallied {
	t := tallied{tally: make(map[string]int, len(req.Options))}
	for _, o := range req.Options {
		t.tally[o] = 0
	}
	blocked := make(map[string]bool)
	for _, v := range votes {
		switch {
		case v.choice == Abstain:
			t.abstentions++
		case strings.HasPrefix(v.choice, VetoPrefix):
			blocked[v.choice[len(VetoPrefix):]] = true
		case req.Rule.Name == RuleWeighted:
			t.tally[v.choice] += req.Panel.Weights[v.seat]
		default:
			t.tally[v.choice]++
		}
	}
	for _, o := range req.Options {
		if blocked[o] {
			t.vetoed = append(t.vetoed, o)
		}
	}
	t.status, t.result = StatusNoQuorum, ""
	switch req.Rule.Name {
	case RulePlurality, RuleWeighted:
		t.status, t.result = top(req.Options, t.tally, 1, nil)
	case RuleQuorum:
		t.status, t.result = top(req.Options, t.tally, req.Rule.Quorum, nil)
	case RuleVeto:
		t.status, t.result = top(req.Options, t.tally, 1, blocked)
	case RuleUnanimity:
		// Every seat filled, and every ballot the same option: an abstention, an
		// absence or a rejected ballot breaks unanimity.
		if len(votes) == len(req.Panel.Members) && len(votes) > 0 {
			first := votes[0].choice
			same := first != Abstain
			for _, v := range votes {
				same = same && v.choice == first
			}
			if same {
				t.status, t.result = StatusDecided, first
			}
		}
	}
	return t
}

// top returns the option with the highest score of at least min among the options
// not blocked: decided if exactly one option has it, a tie if several do, no quorum
// if none reaches min.
func top(options []string, score map[string]int, min int, blocked map[string]bool) (status, result string) {
	best, n := 0, 0
	for _, o := range options {
		s := score[o]
		if blocked[o] || s < min {
			continue
		}
		switch {
		case s > best:
			best, n, result = s, 1, o
		case s == best:
			n++
		}
	}
	switch n {
	case 0:
		return StatusNoQuorum, ""
	case 1:
		return StatusDecided, result
	}
	return StatusTie, ""
}
