package succession

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// States of a role. Only append to this list.
const (
	StateHeld       = "held"        // the holder holds it; no observer suspects
	StateSuspected  = "suspected"   // some observers, fewer than k, suspect
	StatePending    = "pending"     // k observers suspect: the handover takes effect after the wait unless the holder is seen
	StateHandedOver = "handed-over" // a certificate took effect: the role is offered to, or held by, a successor
)

// Steps of a role's history. They are also the names of the audit actions a node
// records when it takes the step itself. Only append to this list.
const (
	StepDefine   = "role.define"
	StepPresence = "role.presence"
	StepSuspect  = "role.suspect"
	StepRefute   = "role.refute"
	StepRemove   = "role.remove"
	StepHandover = "role.handover"
	StepCascade  = "role.cascade"
	StepAccept   = "role.accept"
)

// stepOrder orders steps at one time: causes before their effects.
var stepOrder = map[string]int{StepDefine: 0, StepPresence: 1, StepRefute: 2, StepSuspect: 3, StepRemove: 4, StepHandover: 5, StepCascade: 6, StepAccept: 7}

// RoleState is what a node's events say of a role at one time. Its JSON form is what
// `sios role show --json` prints.
type RoleState struct {
	Name       string   `json:"name"`
	Tenant     string   `json:"tenant"`
	Charter    string   `json:"charter"` // hash of the charter in force
	Seq        uint64   `json:"seq"`
	State      string   `json:"state"`       // one of the State constants
	Holder     string   `json:"holder"`      // who holds the role now; "" while it is offered to a successor who has not accepted, or no successor is left
	HolderNode string   `json:"holder_node"` // after a handover, the node through which the holder accepted
	Former     string   `json:"former"`      // after a handover, the charter's holder
	Successors []string `json:"successors"`
	Observers  []string `json:"observers"`
	K          int      `json:"k"`

	// LastPresence is the latest presence of the charter's holder that the events show
	// (the charter's time when they show none later).
	LastPresence time.Time `json:"last_presence"`
	// Suspicions are, before a handover, the live suspicions: one per observer, the
	// earliest not cancelled by a later presence; after a handover on suspicion, the
	// certificate's.
	Suspicions []Suspected `json:"suspicions"`
	// Removals are the valid removals, one per admin (the earliest).
	Removals []Removed `json:"removals"`

	PendingSince time.Time `json:"pending_since,omitzero"` // pending: the k-th suspicion's time
	EffectiveAt  time.Time `json:"effective_at,omitzero"`  // pending: when the handover takes effect unless the holder is seen; handed-over: when it did

	Basis           string `json:"basis,omitempty"`       // handed-over: BasisSuspicion or BasisRemoval
	CertificateHash string `json:"certificate,omitempty"` // handed-over: the certificate's hash
	Certificate     []byte `json:"-"`                     // handed-over: the certificate's bytes

	// NextChange is the next time the state will change if no new event arrives: the
	// end of the wait, the end of an offer, or the time of an event signed after now. A
	// node computes the state again then (and whenever an event arrives); zero if none.
	NextChange time.Time `json:"next_change,omitzero"`

	Offer     *Offer `json:"offer,omitempty"` // handed-over, not yet accepted: the successor the role is offered to
	Exhausted bool   `json:"exhausted"`       // handed-over: no successor accepted in time; an admin must define a new charter

	History  []Step      `json:"history"`  // every counted event and every step derived from them, in time order
	Rejected []Rejection `json:"rejected"` // every event not counted, with the reason, by event hash
}

// Suspected is one observer's counted suspicion.
type Suspected struct {
	Observer string    `json:"observer"`
	Since    time.Time `json:"since"`
	Time     time.Time `json:"time"`
	Event    string    `json:"event"` // EventHash
}

// Removed is one admin's counted removal.
type Removed struct {
	Admin  string    `json:"admin"`
	Node   string    `json:"node"`
	Reason string    `json:"reason"`
	Time   time.Time `json:"time"`
	Event  string    `json:"event"`
}

// Offer is the role's offer to one successor after a handover: they may accept from
// From until (not including) Until.
type Offer struct {
	Successor string    `json:"successor"`
	Index     int       `json:"index"` // position in the charter's successors
	From      time.Time `json:"from"`
	Until     time.Time `json:"until"`
}

// Step is one entry of a role's history.
type Step struct {
	Time      time.Time `json:"time"`
	Action    string    `json:"action"`              // one of the Step constants
	Node      string    `json:"node,omitempty"`      // the node that signed the event
	Principal string    `json:"principal,omitempty"` // holder, successor or admin concerned
	Ref       string    `json:"ref"`                 // hash of the event, charter or certificate
}

// Rejection is an event that was not counted, and why.
type Rejection struct {
	Event  string `json:"event"` // EventHash of the bytes (CharterHash for a charter)
	Kind   string `json:"kind,omitempty"`
	Node   string `json:"node,omitempty"`
	Reason string `json:"reason"`
}

// check reports why e cannot count for charter c, whatever the time: its role, the
// charter it cites, the holder it names, its signer's or principal's place in the
// charter, and for a suspicion, that it waited suspect_after since a time no earlier
// than the charter.
func (c *Charter) check(e Event) error {
	if t, r := e.scope(); t != c.Tenant || r != c.Name {
		return fmt.Errorf("%s is for role %s/%s, not %s/%s", e.Kind(), t, r, c.Tenant, c.Name)
	}
	wrongCharter := func(h string) error {
		if h != c.Hash() {
			return fmt.Errorf("%s cites charter %s, not the charter in force %s", e.Kind(), h, c.Hash())
		}
		return nil
	}
	wrongHolder := func(h string) error {
		if h != c.Holder {
			return fmt.Errorf("%s names holder %q; the charter's holder is %q", e.Kind(), h, c.Holder)
		}
		return nil
	}
	switch e := e.(type) {
	case *Presence:
		return wrongHolder(e.Holder)
	case *Suspicion:
		if err := wrongCharter(e.Charter); err != nil {
			return err
		}
		if err := wrongHolder(e.Holder); err != nil {
			return err
		}
		if c.observerIndex(e.Node) < 0 {
			return fmt.Errorf("suspicion is signed by %s, which is not an observer of the charter", e.Node)
		}
		if e.since < c.time {
			return fmt.Errorf("suspicion's since %s is before the charter's time %s", e.Since, c.Time)
		}
		if e.time-e.since < int64(c.SuspectAfter) {
			return fmt.Errorf("suspicion was made %d seconds after since; the charter's suspect_after is %d", e.time-e.since, c.SuspectAfter)
		}
	case *Refutation:
		if err := wrongCharter(e.Charter); err != nil {
			return err
		}
		return wrongHolder(e.Holder)
	case *Acceptance:
		if err := wrongCharter(e.Charter); err != nil {
			return err
		}
		if !slices.Contains(c.Successors, e.Successor) {
			return fmt.Errorf("acceptance is by %q, who is not a successor in the charter", e.Successor)
		}
	case *Removal:
		if err := wrongCharter(e.Charter); err != nil {
			return err
		}
		if err := wrongHolder(e.Holder); err != nil {
			return err
		}
		if !slices.Contains(c.Admins, e.Admin) {
			return fmt.Errorf("removal is by %q, who is not an admin in the charter", e.Admin)
		}
	}
	return nil
}

// SignedEvent is an event whose signature has verified: VerifyEvent is the only way to
// make one, so that State, which takes no keys, counts nothing unverified.
type SignedEvent struct{ e Event }

// Event is the verified event.
func (s SignedEvent) Event() Event { return s.e }

// VerifyEvent parses b (ParseEvent) and verifies its signer's signature with keys. A
// node verifies each event once, when it arrives, and keeps the SignedEvent.
func VerifyEvent(b []byte, keys Keys) (SignedEvent, error) {
	e, err := ParseEvent(b)
	if err != nil {
		return SignedEvent{}, err
	}
	if err := e.Verify(keys); err != nil {
		return SignedEvent{}, err
	}
	return SignedEvent{e}, nil
}

// StateFromBytes is State over raw events: each is verified with keys first, and those
// that do not parse or verify (forged, tampered, from an unknown node) are reported in
// Rejected beside those State rejects.
func StateFromBytes(c *Charter, events [][]byte, keys Keys, now time.Time) (RoleState, error) {
	if len(events) > MaxEvents {
		return RoleState{}, fmt.Errorf("state: %d events, more than the limit of %d (MaxEvents)", len(events), MaxEvents)
	}
	var (
		ok  []SignedEvent
		rej []Rejection
	)
	seen := map[string]bool{}
	for _, b := range events {
		h := EventHash(b)
		if seen[h] {
			continue
		}
		seen[h] = true
		e, err := ParseEvent(b)
		if err != nil {
			rej = append(rej, Rejection{Event: h, Reason: err.Error()})
			continue
		}
		if err := e.Verify(keys); err != nil {
			rej = append(rej, Rejection{Event: h, Kind: e.Kind(), Node: e.Signer(), Reason: err.Error()})
			continue
		}
		ok = append(ok, SignedEvent{e})
	}
	st, err := State(c, ok, now)
	if err != nil {
		return RoleState{}, err
	}
	st.Rejected = append(st.Rejected, rej...)
	return finish(st), nil
}

// State computes the state of the role that charter c defines, at now, from the
// verified events a node holds (presences, suspicions, refutations, acceptances and
// removals; duplicates are ignored). c must have been verified (CurrentCharter does).
// Events that cannot count for c (another role or charter, a suspicion by a node that
// is not an observer or made too early, a removal by a principal who is not an admin,
// an acceptance outside its window) are reported in Rejected with the reason.
//
// It is a pure function of (c, the set of events, now): the order of events does not
// matter, and two nodes holding the same events compute the same state and the same
// certificate bytes. An event counts only from its signed time: one signed after now
// is reported and not counted.
//
// The rules (docs/succession.md section 6):
//   - a presence (seen p, signed t) or a refutation (p = t) cancels, from t on, every
//     suspicion whose since is before p;
//   - the handover on suspicion takes effect at the earliest E ≤ now such that k
//     distinct observers have suspicions made no later than E - wait that no presence
//     signed by E cancels; the certificate holds, for each of the k earliest such
//     observers (by time, then node id), its earliest such suspicion, and E is the
//     latest of their times plus wait;
//   - the handover on removal takes effect at the time of the k-th distinct admin's
//     earliest removal; the earlier of the two certificates wins (removal on a tie);
//   - after a handover at E the role is offered to successor i from E + i·accept_within
//     until E + (i+1)·accept_within; the first whose acceptance falls in their own
//     window holds the role.
func State(c *Charter, events []SignedEvent, now time.Time) (RoleState, error) {
	if c == nil || c.raw == nil {
		return RoleState{}, fmt.Errorf("state: no charter (parse and verify one first)")
	}
	if len(events) > MaxEvents {
		return RoleState{}, fmt.Errorf("state of role %s/%s: %d events, more than the limit of %d (MaxEvents)", c.Tenant, c.Name, len(events), MaxEvents)
	}
	n := now.Unix()
	st := RoleState{
		Name: c.Name, Tenant: c.Tenant, Charter: c.Hash(), Seq: c.Seq, Holder: c.Holder,
		Successors: slices.Clone(c.Successors), Observers: slices.Clone(c.Observers), K: c.K,
		Suspicions: []Suspected{}, Removals: []Removed{}, Rejected: []Rejection{},
		History: []Step{{Time: unixTime(c.time), Action: StepDefine, Node: c.Node, Principal: c.Author, Ref: c.Hash()}},
	}
	var (
		sus    []*Suspicion
		rems   []*Removal
		accs   []*Acceptance
		pts    []point
		future int64 = math.MaxInt64
	)
	seen := map[string]bool{}
	for _, se := range events {
		e := se.e
		if e == nil {
			continue // the zero SignedEvent holds nothing
		}
		h := e.Hash()
		if seen[h] {
			continue
		}
		seen[h] = true
		reject := func(reason string) {
			st.Rejected = append(st.Rejected, Rejection{Event: h, Kind: e.Kind(), Node: e.Signer(), Reason: reason})
		}
		if err := c.check(e); err != nil {
			reject(err.Error())
			continue
		}
		if e.at() > n {
			reject(fmt.Sprintf("signed at %s, after now (%s): not counted yet", FormatTime(unixTime(e.at())), FormatTime(now)))
			future = min(future, e.at())
			continue
		}
		step := Step{Time: unixTime(e.at()), Node: e.Signer(), Ref: h}
		switch e := e.(type) {
		case *Presence:
			pts = append(pts, point{e.seen, e.time})
			step.Action, step.Principal = StepPresence, e.Holder
		case *Refutation:
			pts = append(pts, point{e.time, e.time})
			step.Action, step.Principal = StepRefute, e.Holder
		case *Suspicion:
			sus = append(sus, e)
			step.Action, step.Principal = StepSuspect, e.Holder
		case *Removal:
			rems = append(rems, e)
			step.Action, step.Principal = StepRemove, e.Admin
		case *Acceptance:
			accs = append(accs, e)
			continue // in the history only if it counts, below
		}
		st.History = append(st.History, step)
	}
	done := func() (RoleState, error) {
		// The next time the state changes with no new event: see NextChange.
		next := future
		switch {
		case st.State == StatePending:
			next = min(next, st.EffectiveAt.Unix())
		case st.Offer != nil:
			next = min(next, st.Offer.Until.Unix())
		}
		if next != math.MaxInt64 {
			st.NextChange = unixTime(next)
		}
		return finish(st), nil
	}

	voids := newVoids(pts)
	st.LastPresence = unixTime(max(c.time, voids.last()))
	slices.SortFunc(sus, func(a, b *Suspicion) int { return cmpEvents(a, b) })
	slices.SortFunc(rems, func(a, b *Removal) int { return cmpEvents(a, b) })
	slices.SortFunc(accs, func(a, b *Acceptance) int { return cmpEvents(a, b) })

	for _, r := range firstPer(rems, func(r *Removal) string { return r.Admin }) {
		st.Removals = append(st.Removals, Removed{Admin: r.Admin, Node: r.Node, Reason: r.Reason, Time: unixTime(r.time), Event: r.Hash()})
	}
	cert, err := handover(c, sus, rems, voids, n)
	if err != nil {
		return RoleState{}, err
	}
	if cert == nil {
		live := liveAt(c, sus, voids, n, n)
		for _, s := range live {
			st.Suspicions = append(st.Suspicions, Suspected{Observer: s.Node, Since: unixTime(s.since), Time: unixTime(s.time), Event: s.Hash()})
		}
		switch {
		case len(live) >= c.K:
			st.State = StatePending
			st.PendingSince = unixTime(live[c.K-1].time)
			st.EffectiveAt = unixTime(live[c.K-1].time + int64(c.Wait))
		case len(live) > 0:
			st.State = StateSuspected
		default:
			st.State = StateHeld
		}
		for _, a := range accs {
			st.Rejected = append(st.Rejected, Rejection{Event: a.Hash(), Kind: KindAcceptance, Node: a.Node, Reason: "no handover has taken effect"})
		}
		return done()
	}

	st.State, st.Former, st.Holder = StateHandedOver, c.Holder, ""
	st.Basis, st.Certificate, st.CertificateHash = cert.Basis, cert.raw, cert.Hash()
	st.EffectiveAt = unixTime(cert.effective)
	if cert.Basis == BasisSuspicion {
		for _, e := range cert.events {
			s := e.(*Suspicion)
			st.Suspicions = append(st.Suspicions, Suspected{Observer: s.Node, Since: unixTime(s.since), Time: unixTime(s.time), Event: s.Hash()})
		}
	}
	st.History = append(st.History, Step{Time: st.EffectiveAt, Action: StepHandover, Principal: c.Successors[0], Ref: cert.Hash()})

	// The cascade: successor i may accept in [E + i·A, E + (i+1)·A).
	E, A := cert.effective, int64(c.AcceptWithin)
	used := map[string]bool{}
	st.Exhausted = true
	for i, s := range c.Successors {
		from, until := E+int64(i)*A, E+int64(i+1)*A
		if from > n {
			st.Exhausted = false
			break
		}
		var acc *Acceptance
		for _, a := range accs {
			if a.Successor == s && a.time >= from && a.time < until {
				acc = a
				break
			}
		}
		if acc != nil {
			st.Holder, st.HolderNode, st.Exhausted = s, acc.Node, false
			used[acc.Hash()] = true
			st.History = append(st.History, Step{Time: unixTime(acc.time), Action: StepAccept, Node: acc.Node, Principal: s, Ref: acc.Hash()})
			break
		}
		if until > n {
			st.Offer = &Offer{Successor: s, Index: i, From: unixTime(from), Until: unixTime(until)}
			st.Exhausted = false
			break
		}
		next := ""
		if i+1 < len(c.Successors) {
			next = c.Successors[i+1]
		}
		st.History = append(st.History, Step{Time: unixTime(until), Action: StepCascade, Principal: next, Ref: cert.Hash()})
	}
	for _, a := range accs {
		if used[a.Hash()] {
			continue
		}
		i := slices.Index(c.Successors, a.Successor)
		from, until := E+int64(i)*A, E+int64(i+1)*A
		var reason string
		switch {
		case st.Holder != "":
			reason = fmt.Sprintf("the role was accepted by %q", st.Holder)
		case a.time < from:
			reason = fmt.Sprintf("made at %s, before the role was offered to %q (from %s)", a.Time, a.Successor, FormatTime(unixTime(from)))
		default:
			reason = fmt.Sprintf("made at %s, after the offer to %q ended (%s)", a.Time, a.Successor, FormatTime(unixTime(until)))
		}
		st.Rejected = append(st.Rejected, Rejection{Event: a.Hash(), Kind: KindAcceptance, Node: a.Node, Reason: reason})
	}
	return done()
}

// finish puts the history and the rejections in their canonical order.
func finish(st RoleState) RoleState {
	slices.SortFunc(st.History, func(a, b Step) int {
		return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(stepOrder[a.Action], stepOrder[b.Action]),
			strings.Compare(a.Ref, b.Ref), strings.Compare(a.Principal, b.Principal))
	})
	slices.SortFunc(st.Rejected, func(a, b Rejection) int { return strings.Compare(a.Event, b.Event) })
	return st
}

// handover finds the certificate in effect at n, or nil.
func handover(c *Charter, sus []*Suspicion, rems []*Removal, v voids, n int64) (*Certificate, error) {
	var (
		basis  string
		chosen []Event
		eff    int64 = math.MaxInt64
	)
	// On suspicion: the candidate effective times are each suspicion's time plus wait,
	// in order; the first at which k distinct observers hold a live suspicion wins.
	// Each observer's suspicions wait in a queue in cmpEvents order; a suspicion
	// cancelled at one candidate time stays cancelled at every later one, so it leaves
	// its queue for good, and the queue's head is the observer's live suspicion (this
	// is liveAt, incrementally: O(events × observers) in all).
	wait := int64(c.Wait)
	queues := make([][]*Suspicion, len(c.Observers))
	next := 0
	for i, s := range sus {
		E := s.time + wait
		if E > n {
			break
		}
		if i > 0 && sus[i-1].time == s.time {
			continue // the same candidate
		}
		for ; next < len(sus) && sus[next].time <= s.time; next++ {
			o := c.observerIndex(sus[next].Node)
			queues[o] = append(queues[o], sus[next])
		}
		var heads []*Suspicion
		for o, q := range queues {
			for len(q) > 0 && v.cancelledBy(q[0].since) <= E {
				q = q[1:]
			}
			queues[o] = q
			if len(q) > 0 {
				heads = append(heads, q[0])
			}
		}
		if len(heads) >= c.K {
			slices.SortFunc(heads, func(a, b *Suspicion) int { return compareEvidence(a, b) })
			basis, eff = BasisSuspicion, heads[c.K-1].time+wait
			for _, s := range heads[:c.K] {
				chosen = append(chosen, s)
			}
			break
		}
	}
	// On removal: the k-th distinct admin's earliest removal.
	if first := firstPer(rems, func(r *Removal) string { return r.Admin }); len(first) >= c.K {
		slices.SortFunc(first, func(a, b *Removal) int { return compareEvidence(a, b) })
		if E := first[c.K-1].time; E <= eff {
			basis, eff, chosen = BasisRemoval, E, nil
			for _, r := range first[:c.K] {
				chosen = append(chosen, r)
			}
		}
	}
	if basis == "" {
		return nil, nil
	}
	return assemble(c, basis, chosen, eff)
}

// liveAt returns, for each observer, its earliest suspicion made no later than made
// and not cancelled by a presence signed no later than at; sorted by (time, observer).
// sus must be sorted by cmpEvents.
func liveAt(c *Charter, sus []*Suspicion, v voids, made, at int64) []*Suspicion {
	var live []*Suspicion
	taken := make([]bool, len(c.Observers))
	for _, s := range sus {
		if s.time > made {
			break
		}
		i := c.observerIndex(s.Node)
		if taken[i] || v.cancelledBy(s.since) <= at {
			continue
		}
		taken[i] = true
		live = append(live, s)
	}
	slices.SortFunc(live, func(a, b *Suspicion) int { return compareEvidence(a, b) })
	return live
}

// cmpEvents orders events by time, then by hash: a total order on distinct events.
func cmpEvents[E Event](a, b E) int {
	return cmp.Or(cmp.Compare(a.at(), b.at()), strings.Compare(a.Hash(), b.Hash()))
}

// firstPer keeps the first event of each key in l (sorted by cmpEvents).
func firstPer[E Event](l []E, key func(E) string) []E {
	var out []E
	seen := map[string]bool{}
	for _, e := range l {
		if k := key(e); !seen[k] {
			seen[k] = true
			out = append(out, e)
		}
	}
	return out
}

// point is a presence of the holder seen at p, signed (and so known) from t.
type point struct{ p, t int64 }

// voids answers, for a suspicion's since S, the earliest time from which a presence
// cancels it: min{t : p > S}.
type voids struct {
	ps     []int64 // presence times, ascending
	minT   []int64 // minT[i] = min t over points i.. (in ps order)
	latest int64
}

func newVoids(pts []point) voids {
	slices.SortFunc(pts, func(a, b point) int { return cmp.Or(cmp.Compare(a.p, b.p), cmp.Compare(a.t, b.t)) })
	v := voids{ps: make([]int64, len(pts)), minT: make([]int64, len(pts)), latest: math.MinInt64}
	m := int64(math.MaxInt64)
	for i := len(pts) - 1; i >= 0; i-- {
		m = min(m, pts[i].t)
		v.ps[i], v.minT[i] = pts[i].p, m
		v.latest = max(v.latest, pts[i].p)
	}
	return v
}

// cancelledBy is the earliest time a presence seen after since is signed, or MaxInt64.
func (v voids) cancelledBy(since int64) int64 {
	i := sort.Search(len(v.ps), func(i int) bool { return v.ps[i] > since })
	if i == len(v.ps) {
		return math.MaxInt64
	}
	return v.minT[i]
}

// last is the latest presence seen, or MinInt64.
func (v voids) last() int64 { return v.latest }
