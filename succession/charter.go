package succession

import (
	"fmt"
	"slices"
	"strings"

	"github.com/sios-project/sios/identity"
)

// Versions, domains and hash prefixes of the charter. A signature or hash made for one
// format can never be mistaken for another's.
const (
	CharterVersion    = "role-charter/1"
	CharterDomain     = "role-charter/1 charter" // identity.PrivateKey.Sign domain of a charter
	CharterHashDomain = "role-charter/1 hash"    // prefix (followed by a newline) of a charter hash
)

// Charter defines a role of a tenant: who holds it, who succeeds, which nodes watch for
// the holder's presence and how many of them must agree before a handover. It is signed
// by the node through which an admin defined it. A charter with a higher seq, whose prev
// is the hash of the charter it replaces, replaces it (see CurrentCharter).
type Charter struct {
	V            string              `json:"v"`
	Tenant       string              `json:"tenant"`
	Name         string              `json:"name"`          // the role, as policies name it
	Seq          uint64              `json:"seq"`           // version: 0, 1, 2, …
	Prev         string              `json:"prev"`          // "" for seq 0, else the charter hash of seq-1
	Holder       string              `json:"holder"`        // principal id holding the role
	Successors   []string            `json:"successors"`    // principal ids, in order of succession
	Observers    []string            `json:"observers"`     // node ids, sorted, at least 2
	K            int                 `json:"k"`             // observers (or admins) needed: 2..len(observers)
	Admins       []string            `json:"admins"`        // principal ids whose removals count, sorted; none, or at least k
	SuspectAfter uint64              `json:"suspect_after"` // seconds without presence before an observer suspects
	Wait         uint64              `json:"wait"`          // seconds from the k-th suspicion to the handover
	AcceptWithin uint64              `json:"accept_within"` // seconds each successor has to accept
	Author       string              `json:"author"`        // principal id of the admin who defined it
	Node         string              `json:"node"`          // node id of the signer
	Time         string              `json:"time"`          // FormatTime
	Sig          *identity.Signature `json:"sig,omitempty"`

	raw  []byte
	hash string
	time int64
}

func (*Charter) format() format {
	return format{"charter", CharterVersion, CharterDomain, MaxCharterSize, "MaxCharterSize"}
}
func (c *Charter) sigField() **identity.Signature { return &c.Sig }
func (c *Charter) signer() string                 { return c.Node }
func (c *Charter) setRaw(b []byte)                { c.raw, c.hash = b, hashOf(CharterHashDomain, b) }

// Bytes is the charter's canonical encoding, as signed (sig included).
func (c *Charter) Bytes() []byte { return c.raw }

// Hash names the charter: SHA-256(CharterHashDomain || 0x0A || Bytes()) in lowercase hex.
// Every event of the succession protocol cites it.
func (c *Charter) Hash() string { return c.hash }

// Verify checks that the charter's node is one keys knows and that it signed the charter.
func (c *Charter) Verify(keys Keys) error { return verify(c, keys) }

// Encode is the canonical encoding of the charter's members as they are now.
func (c *Charter) Encode() ([]byte, error) { return encode(c, c.format()) }

// SignCharter fills V, sorts Observers and Admins (their order carries no meaning),
// checks every member, signs the charter with key (that of c.Node) and returns its
// canonical bytes.
func SignCharter(key *identity.PrivateKey, c Charter) ([]byte, error) {
	c.V = CharterVersion
	c.Successors = slices.Clone(nonNil(c.Successors))
	c.Observers = nonNil(slices.Sorted(slices.Values(c.Observers)))
	c.Admins = nonNil(slices.Sorted(slices.Values(c.Admins)))
	return sign(key, &c)
}

// ParseCharter decodes a charter strictly (see the package documentation) and checks
// every member. It does not check the signature: Verify does.
func ParseCharter(b []byte) (*Charter, error) { return parse[Charter](b) }

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (c *Charter) validate() error {
	if c.V != CharterVersion {
		return fmt.Errorf("charter v is %q, want %q", short(c.V), CharterVersion)
	}
	if err := checkID("charter tenant", c.Tenant); err != nil {
		return err
	}
	if err := checkID("charter name", c.Name); err != nil {
		return err
	}
	where := fmt.Sprintf("charter %s/%s seq %d", c.Tenant, c.Name, c.Seq)
	if c.Seq > MaxSeq {
		return fmt.Errorf("%s: seq is more than 2^53 (MaxSeq)", where)
	}
	if c.Seq == 0 && c.Prev != "" {
		return fmt.Errorf("%s: prev must be \"\" for seq 0", where)
	}
	if c.Seq > 0 {
		if err := checkHash(where+": prev", c.Prev); err != nil {
			return err
		}
	}
	if err := checkID(where+": holder", c.Holder); err != nil {
		return err
	}
	if err := checkList(where+": successors", c.Successors, 1, MaxSuccessors, "MaxSuccessors", false, checkID); err != nil {
		return err
	}
	if slices.Contains(c.Successors, c.Holder) {
		return fmt.Errorf("%s: the holder %q is also a successor", where, c.Holder)
	}
	if err := checkList(where+": observers", c.Observers, 2, MaxObservers, "MaxObservers", true, checkNode); err != nil {
		return err
	}
	if c.K < 2 || c.K > len(c.Observers) {
		return fmt.Errorf("%s: k is %d; it must be at least 2 and at most the number of observers (%d)", where, c.K, len(c.Observers))
	}
	if err := checkList(where+": admins", c.Admins, 0, MaxAdmins, "MaxAdmins", true, checkID); err != nil {
		return err
	}
	if len(c.Admins) > 0 && len(c.Admins) < c.K {
		return fmt.Errorf("%s: %d admins can never reach k=%d removals; name none (no removal) or at least k", where, len(c.Admins), c.K)
	}
	for _, d := range []struct {
		name string
		v    uint64
	}{{"suspect_after", c.SuspectAfter}, {"wait", c.Wait}, {"accept_within", c.AcceptWithin}} {
		if d.v < 1 || d.v > MaxDuration {
			return fmt.Errorf("%s: %s is %d seconds; it must be 1 to %d (MaxDuration)", where, d.name, d.v, MaxDuration)
		}
	}
	if err := checkID(where+": author", c.Author); err != nil {
		return err
	}
	if err := checkNode(where+": node", c.Node); err != nil {
		return err
	}
	t, err := parseTime(where+": time", c.Time)
	if err != nil {
		return err
	}
	c.time = t
	return nil
}

// checkList requires between min and max distinct members, each passing check, and
// when sorted is set, in ascending byte order. A list that is absent (null) is refused:
// an empty one is written [].
func checkList(name string, l []string, min, max int, maxName string, sorted bool, check func(string, string) error) error {
	if l == nil {
		return fmt.Errorf("%s is required (an empty list is [])", name)
	}
	if len(l) < min || len(l) > max {
		return fmt.Errorf("%s has %d members; it must have %d to %d (%s)", name, len(l), min, max, maxName)
	}
	for i, s := range l {
		if err := check(fmt.Sprintf("%s[%d]", name, i), s); err != nil {
			return err
		}
		if slices.Contains(l[:i], s) {
			return fmt.Errorf("%s[%d] %q appears twice", name, i, s)
		}
		if sorted && i > 0 && strings.Compare(l[i-1], s) > 0 {
			return fmt.Errorf("%s must be sorted: %q comes after %q", name, s, l[i-1])
		}
	}
	return nil
}

// observerIndex is the position of node in c.Observers, or -1.
func (c *Charter) observerIndex(node string) int {
	i, ok := slices.BinarySearch(c.Observers, node)
	if !ok {
		return -1
	}
	return i
}

// CurrentCharter picks the charter in force for the role name of tenant from the
// charters held for it: every one parsed and verified with keys; seq 0, or seq n whose
// prev is the hash of a charter in force at seq n-1; the highest seq among them. Two
// valid charters at one seq are a conflict (two admins replaced one version at once):
// the one with the lower hash wins and the other is reported, so that every node picks
// the same one from the same set. It returns nil when no valid charter is held; every
// charter not in force is reported with the reason.
func CurrentCharter(tenant, name string, charters [][]byte, keys Keys) (*Charter, []Rejection, error) {
	if len(charters) > MaxCharters {
		return nil, nil, fmt.Errorf("%d charters for role %s/%s, more than the limit of %d (MaxCharters)", len(charters), tenant, name, MaxCharters)
	}
	var rej []Rejection
	reject := func(b []byte, node, reason string) {
		rej = append(rej, Rejection{Event: hashOf(CharterHashDomain, b), Kind: "charter", Node: node, Reason: reason})
	}
	bySeq := map[uint64]map[string]*Charter{}
	seen := map[string]bool{}
	for _, b := range charters {
		c, err := ParseCharter(b)
		if err != nil {
			reject(b, "", err.Error())
			continue
		}
		if seen[c.Hash()] {
			continue
		}
		seen[c.Hash()] = true
		if c.Tenant != tenant || c.Name != name {
			reject(b, c.Node, fmt.Sprintf("charter is for role %s/%s, not %s/%s", c.Tenant, c.Name, tenant, name))
			continue
		}
		if err := c.Verify(keys); err != nil {
			reject(b, c.Node, err.Error())
			continue
		}
		if bySeq[c.Seq] == nil {
			bySeq[c.Seq] = map[string]*Charter{}
		}
		bySeq[c.Seq][c.Hash()] = c
	}
	var cur *Charter
	for seq := uint64(0); len(bySeq[seq]) > 0; seq++ {
		var chained []*Charter
		for _, c := range bySeq[seq] {
			if seq == 0 || cur != nil && c.Prev == cur.Hash() {
				chained = append(chained, c)
			} else {
				reject(c.raw, c.Node, fmt.Sprintf("seq %d does not follow the charter in force at seq %d (prev %s)", c.Seq, seq-1, c.Prev))
			}
		}
		delete(bySeq, seq)
		if len(chained) == 0 {
			break
		}
		slices.SortFunc(chained, func(a, b *Charter) int { return strings.Compare(a.Hash(), b.Hash()) })
		cur = chained[0]
		for _, c := range chained[1:] {
			reject(c.raw, c.Node, fmt.Sprintf("conflicts with charter %s at seq %d (two versions with one seq: the lower hash is in force)", cur.Hash(), seq))
		}
	}
	for _, m := range bySeq {
		for _, c := range m {
			reject(c.raw, c.Node, fmt.Sprintf("seq %d does not follow the charter in force (no valid charter at seq %d)", c.Seq, c.Seq-1))
		}
	}
	slices.SortFunc(rej, func(a, b Rejection) int { return strings.Compare(a.Event, b.Event) })
	return cur, rej, nil
}
