package succession

import (
	"fmt"
	"strings"
	"testing"
)

func TestCharterValidate(t *testing.T) {
	f := newFixture(t)
	base := func() Charter {
		return Charter{Tenant: "nhs-trust-a", Name: "siro", Holder: "dr.okafor", Successors: []string{"dr.li", "dr.patel"},
			Observers: f.obs, K: 3, Admins: []string{"admin.a", "admin.b", "admin.c"}, SuspectAfter: 60, Wait: 30, AcceptWithin: 20,
			Author: "admin.a", Node: f.other, Time: f.at(0)}
	}
	cases := []struct {
		name   string
		change func(c *Charter)
		reason string
	}{
		{"k of 1", func(c *Charter) { c.K = 1 }, "k is 1"},
		{"k above the observers", func(c *Charter) { c.K = 5 }, "k is 5"},
		{"one observer", func(c *Charter) { c.Observers, c.K = f.obs[:1], 2 }, "observers has 1 members"},
		{"an observer twice", func(c *Charter) { c.Observers = []string{f.obs[0], f.obs[0], f.obs[1]} }, "appears twice"},
		{"not a node id", func(c *Charter) { c.Observers = []string{f.obs[0], "node_ABC"}; c.K = 2 }, "is not a node id"},
		{"the holder succeeds", func(c *Charter) { c.Successors = []string{"dr.li", "dr.okafor"} }, "also a successor"},
		{"no successor", func(c *Charter) { c.Successors = nil }, "successors has 0 members"},
		{"too few admins", func(c *Charter) { c.Admins = []string{"admin.a"} }, "can never reach k=3"},
		{"no wait", func(c *Charter) { c.Wait = 0 }, "wait is 0 seconds"},
		{"suspect_after beyond the cap", func(c *Charter) { c.SuspectAfter = MaxDuration + 1 }, "MaxDuration"},
		{"a tenant with a space", func(c *Charter) { c.Tenant = "nhs trust" }, "charter tenant"},
		{"a role too long", func(c *Charter) { c.Name = strings.Repeat("r", MaxIDLen+1) }, "MaxIDLen"},
		{"prev at seq 0", func(c *Charter) { c.Prev = strings.Repeat("0", 64) }, "prev must be"},
		{"no prev at seq 1", func(c *Charter) { c.Seq = 1 }, "prev"},
		{"a fraction of a second", func(c *Charter) { c.Time = "2026-03-01T09:00:00.5Z" }, "whole seconds"},
		{"signed by another node", func(c *Charter) { c.Node = f.obs[0] }, "the key given is"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ch := base()
			c.change(&ch)
			_, err := SignCharter(f.keys[f.other], ch)
			if err == nil || !strings.Contains(err.Error(), c.reason) {
				t.Fatalf("SignCharter: %v, want an error containing %q", err, c.reason)
			}
		})
	}
	// No admins at all is allowed: the role then cannot be removed, only succeeded.
	ch := base()
	ch.Admins = nil
	if _, err := SignCharter(f.keys[f.other], ch); err != nil {
		t.Fatalf("charter without admins: %v", err)
	}
}

// Parsing refuses what the writer never makes, even when the bytes are canonical.
func TestParseStrict(t *testing.T) {
	f := newFixture(t)
	good := string(f.charter.Bytes())
	unsorted := strings.Replace(good, `"observers":["`+f.obs[0]+`","`+f.obs[1]+`"`, `"observers":["`+f.obs[1]+`","`+f.obs[0]+`"`, 1)
	cases := []struct {
		name, doc, reason string
	}{
		{"unknown member", strings.Replace(good, `"admins":`, `"admin_note":"x","admins":`, 1), "not part of role-charter/1"},
		{"duplicate member", strings.Replace(good, `"admins":`, `"admins":[],"admins":`, 1), "canonical"},
		{"differently cased", strings.Replace(good, `"author":`, `"Author":`, 1), "canonical"},
		{"missing member", strings.Replace(good, `"author":"admin.a",`, ``, 1), "author"},
		{"null list", strings.Replace(good, `"admins":["admin.a","admin.b","admin.c"]`, `"admins":null`, 1), "admins is required"},
		{"whitespace", strings.Replace(good, `"k":3`, `"k": 3`, 1), "canonical"},
		{"unsorted observers", unsorted, "must be sorted"},
		{"too large", good + strings.Repeat(" ", MaxCharterSize), "MaxCharterSize"},
		{"no signature", good[:strings.Index(good, `"sig":`)] + good[strings.Index(good, `"successors":`):], "sig is required"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseCharter([]byte(c.doc))
			if err == nil || !strings.Contains(err.Error(), c.reason) {
				t.Fatalf("ParseCharter: %v, want an error containing %q", err, c.reason)
			}
		})
	}
	// The "differently cased" case on its own: encoding/json matches member names
	// without regard to case; the canonical order already refuses this one, and the
	// re-encoding check refuses those the order does not.
	lower := strings.Replace(good, `"wait":30`, `"waiT":30`, 1)
	if _, err := ParseCharter([]byte(lower)); err == nil {
		t.Fatal("a member in another case was accepted")
	}
}

func TestCurrentCharter(t *testing.T) {
	f := newFixture(t)
	next := func(prev *Charter, seq uint64, author string) *Charter {
		return f.signCharter(Charter{Tenant: "nhs-trust-a", Name: "caldicott-guardian", Seq: seq, Prev: prev.Hash(), Holder: "dr.li",
			Successors: []string{"dr.patel"}, Observers: f.obs, K: 2, Admins: []string{}, SuspectAfter: 60, Wait: 30, AcceptWithin: 20,
			Author: author, Node: f.other, Time: f.at(int64(seq))})
	}
	c1 := next(f.charter, 1, "admin.a")
	c1b := next(f.charter, 1, "admin.b") // a conflicting replacement of seq 0
	c2 := next(c1, 2, "admin.a")
	lost := f.signCharter(Charter{Tenant: "nhs-trust-a", Name: "caldicott-guardian", Seq: 5, Prev: c2.Hash(), Holder: "dr.li",
		Successors: []string{"dr.patel"}, Observers: f.obs, K: 2, Admins: []string{}, SuspectAfter: 60, Wait: 30, AcceptWithin: 20,
		Author: "admin.c", Node: f.other, Time: f.at(5)})
	other := f.signCharter(Charter{Tenant: "nhs-trust-a", Name: "siro", Holder: "dr.li", Successors: []string{"dr.patel"},
		Observers: f.obs, K: 2, Admins: []string{}, SuspectAfter: 60, Wait: 30, AcceptWithin: 20, Author: "admin.c", Node: f.other, Time: f.at(5)})

	// Which of c1 and c1b wins is their hash order; c2 follows only c1.
	winner, loser := c1, c1b
	if c1b.Hash() < c1.Hash() {
		winner, loser = c1b, c1
	}
	cur, rej, err := CurrentCharter("nhs-trust-a", "caldicott-guardian",
		[][]byte{c2.Bytes(), lost.Bytes(), c1b.Bytes(), f.charter.Bytes(), c1.Bytes(), other.Bytes(), f.charter.Bytes()}, f.pub)
	if err != nil {
		t.Fatal(err)
	}
	if winner == c1 {
		if cur == nil || cur.Hash() != c2.Hash() {
			t.Fatalf("current is %v, want c2 (seq 2)", cur)
		}
	} else if cur == nil || cur.Hash() != c1b.Hash() {
		t.Fatalf("current is %v, want c1b (seq 1; c2 follows the losing c1)", cur)
	}
	reasons := map[string]string{}
	for _, r := range rej {
		reasons[r.Event] = r.Reason
	}
	if !strings.Contains(reasons[hashOf(CharterHashDomain, loser.Bytes())], "conflicts with charter") {
		t.Fatalf("the losing seq 1: %q", reasons[hashOf(CharterHashDomain, loser.Bytes())])
	}
	if !strings.Contains(reasons[hashOf(CharterHashDomain, lost.Bytes())], "does not follow") {
		t.Fatalf("seq 5 with a gap: %q", reasons[hashOf(CharterHashDomain, lost.Bytes())])
	}
	if !strings.Contains(reasons[hashOf(CharterHashDomain, other.Bytes())], "not nhs-trust-a/caldicott-guardian") {
		t.Fatalf("another role's charter: %q", reasons[hashOf(CharterHashDomain, other.Bytes())])
	}
	// Order does not matter.
	again, _, _ := CurrentCharter("nhs-trust-a", "caldicott-guardian",
		[][]byte{f.charter.Bytes(), c1.Bytes(), c1b.Bytes(), c2.Bytes(), lost.Bytes(), other.Bytes()}, f.pub)
	if again.Hash() != cur.Hash() {
		t.Fatal("CurrentCharter depends on the order of charters")
	}
	if none, _, _ := CurrentCharter("nhs-trust-a", "caldicott-guardian", [][]byte{c1.Bytes()}, f.pub); none != nil {
		t.Fatal("a seq 1 without its seq 0 was put in force")
	}
}

func TestParseDocument(t *testing.T) {
	f := newFixture(t)
	l := f.sealLetter()
	kem, err := SignKEM(f.keys[f.obs[0]], f.obs[0], f.kemPub[f.obs[0]], f.now(0))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		doc  []byte
		want string
	}{
		{f.charter.Bytes(), "*succession.Charter"},
		{f.suspicion(f.obs[0], 0, 60), "*succession.Suspicion"},
		{f.removal(f.obs[0], "admin.a", 5), "*succession.Removal"},
		{l.Bytes(), "*succession.Letter"},
		{f.release(l, f.handedOver(), f.obs[0]), "*succession.ReleasedShare"},
		{kem, "*succession.KEMStatement"},
	}
	for _, c := range cases {
		d, err := ParseDocument(c.doc)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprintf("%T", d); got != c.want {
			t.Fatalf("ParseDocument gave a %s, want %s", got, c.want)
		}
	}
	if _, err := ParseDocument([]byte(`{"v":"role-certificate/1"}`)); err == nil {
		t.Fatal("ParseDocument accepted a certificate: certificates are assembled, not carried")
	}
}
