package fleet

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// step is one Add with what it must do.
type step struct {
	rec     []byte
	trust   Trust
	status  Status // when err is ""
	applied int    // when status is Applied
	err     string // substring of the error, "" for success
	errIs   error
}

func TestAdd(t *testing.T) {
	fx := newFixture(t)
	tests := []struct {
		name  string
		steps func(t *testing.T) []step
		nodes []string // node ids View must show afterwards
		forks int
	}{
		{"valid feed accepted", func(t *testing.T) []step {
			fb := newFeed(t, fx.a1).standard()
			var s []step
			for _, r := range fb.recs {
				s = append(s, step{rec: r, status: Applied, applied: 1})
			}
			return s
		}, []string{fx.a1.ID()}, 0},
		{"two institutions trusted", func(t *testing.T) []step {
			a, b := newFeed(t, fx.a2).standard(), newFeed(t, fx.b1).standard()
			return []step{{rec: a.recs[0], status: Applied, applied: 1}, {rec: b.recs[0], status: Applied, applied: 1},
				{rec: b.recs[1], status: Applied, applied: 1}}
		}, []string{fx.a2.ID(), fx.b1.ID()}, 0},
		{"untrusted root", func(t *testing.T) []step {
			b := newFeed(t, fx.b1).standard()
			return []step{{rec: b.recs[0], trust: fx.onlyA, err: "trusted institution root", errIs: ErrUntrusted},
				{rec: b.recs[1], trust: fx.onlyA, status: Held}} // unknown node: held, never shown
		}, nil, 0},
		{"wrong key", func(t *testing.T) []step {
			fb := newFeed(t, fx.a1)
			fb.key = fx.a2.Key // a2 signs a record in a1's name
			return []step{{rec: fb.recs[0], status: Applied, applied: 1},
				{rec: fb.next(KindPosture, &PostureBody{Classification: "OFFICIAL"}), err: "signature does not verify"}}
		}, []string{fx.a1.ID()}, 0},
		{"identity signed by another node's key", func(t *testing.T) []step {
			fb := &feedBuilder{t: t, node: fx.a1, key: fx.a2.Key}
			return []step{{rec: fb.next(KindIdentity, &IdentityBody{Attestation: AttestSoftware, Certificate: fx.a1.Cert}), err: "signature does not verify"}}
		}, nil, 0},
		{"certificate of another node", func(t *testing.T) []step {
			_, err := NewRecord(fx.a1.Key, fx.a1.ID(), 0, nil, KindIdentity, &IdentityBody{Attestation: AttestSoftware, Certificate: fx.a2.Cert}, t0)
			if err == nil || !strings.Contains(err.Error(), "certificate is for node") {
				t.Fatalf("NewRecord = %v, want certificate is for node", err)
			}
			return nil
		}, nil, 0},
		{"tpm attestation without evidence, software with evidence", func(t *testing.T) []step {
			for _, c := range []struct {
				body IdentityBody
				want string
			}{
				{IdentityBody{Attestation: AttestTPM, Certificate: fx.a1.Cert}, "needs evidence"},
				{IdentityBody{Attestation: AttestSoftware, Certificate: fx.a1.Cert, Evidence: []byte(`{"v":"sios-tpm-evidence/1"}`)}, "only with attestation"},
				{IdentityBody{Attestation: AttestTPM, Certificate: fx.a1.Cert, Evidence: []byte(`{"v":"sios-tpm-evidence/1"}`)}, "evidence"},
			} {
				_, err := NewRecord(fx.a1.Key, fx.a1.ID(), 0, nil, KindIdentity, &c.body, t0)
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("NewRecord(%+v) = %v, want %q", c.body.Attestation, err, c.want)
				}
			}
			return nil
		}, nil, 0},
		{"bad prev", func(t *testing.T) []step {
			fb := newFeed(t, fx.a1).standard()
			bad, err := NewRecord(fx.a1.Key, fx.a1.ID(), 2, Hash([]byte("other")), KindLimits, &LimitsBody{RequestsPerMinute: 1}, t0)
			if err != nil {
				t.Fatal(err)
			}
			return []step{{rec: fb.recs[0], status: Applied, applied: 1}, {rec: fb.recs[1], status: Applied, applied: 1},
				{rec: bad, err: "prev"}}
		}, []string{fx.a1.ID()}, 0},
		{"skipped seq held then applied", func(t *testing.T) []step {
			fb := newFeed(t, fx.a1).standard()
			r := fb.recs
			return []step{{rec: r[3], status: Held}, {rec: r[0], status: Applied, applied: 1}, {rec: r[2], status: Held},
				{rec: r[5], status: Held}, {rec: r[2], status: Held}, {rec: r[1], status: Applied, applied: 3},
				{rec: r[4], status: Applied, applied: 2}}
		}, []string{fx.a1.ID()}, 0},
		{"replayed record is a no-op", func(t *testing.T) []step {
			fb := newFeed(t, fx.a1).standard()
			r := fb.recs
			return []step{{rec: r[0], status: Applied, applied: 1}, {rec: r[1], status: Applied, applied: 1},
				{rec: r[0], status: Duplicate}, {rec: r[1], status: Duplicate}, {rec: r[2], status: Applied, applied: 1}}
		}, []string{fx.a1.ID()}, 0},
		{"tampered body", func(t *testing.T) []step {
			fb := newFeed(t, fx.a1).standard()
			return []step{{rec: fb.recs[0], status: Applied, applied: 1},
				{rec: replace(t, fb.recs[1], `"SECRET"`, `"TOP-SECRET"`), err: "signature does not verify"}}
		}, []string{fx.a1.ID()}, 0},
		{"tampered body while held", func(t *testing.T) []step {
			fb := newFeed(t, fx.a1).standard()
			return []step{{rec: fb.recs[0], status: Applied, applied: 1},
				{rec: replace(t, fb.recs[2], `"legal"`, `"lethal"`), err: "signature does not verify"}}
		}, []string{fx.a1.ID()}, 0},
		{"extra member", func(t *testing.T) []step {
			fb := newFeed(t, fx.a1).standard()
			return []step{{rec: fb.recs[0], status: Applied, applied: 1},
				{rec: replace(t, fb.recs[1], `,"v":"fed/1"}`, `,"v":"fed/1","x":1}`), err: `unknown object member name "x"`},
				{rec: replace(t, fb.recs[1], `{"classification"`, `{"by":"me","classification"`), err: `unknown object member name "by"`},
				{rec: replace(t, fb.recs[1], `{"classification"`, `{"Classification"`), err: `unknown object member name "Classification"`},
				{rec: replace(t, fb.recs[1], `"seq":1`, `"Seq":1`), err: "not in canonical form"}}
		}, []string{fx.a1.ID()}, 0},
		{"identity after seq 0", func(t *testing.T) []step {
			fb := newFeed(t, fx.a1)
			_, err := NewRecord(fx.a1.Key, fx.a1.ID(), 1, fb.prev(), KindIdentity, &IdentityBody{Attestation: AttestSoftware, Certificate: fx.a1.Cert}, t0)
			if err == nil || !strings.Contains(err.Error(), "only it, is its identity record") {
				t.Fatalf("NewRecord = %v", err)
			}
			return nil
		}, nil, 0},
		{"fork", func(t *testing.T) []step {
			fb := newFeed(t, fx.a1).standard()
			alt := &feedBuilder{t: t, node: fx.a1, key: fx.a1.Key, recs: fb.recs[:1:1]}
			other := alt.add(KindPosture, &PostureBody{Classification: "OFFICIAL"})
			return []step{{rec: fb.recs[0], status: Applied, applied: 1}, {rec: fb.recs[1], status: Applied, applied: 1},
				{rec: fb.recs[3], status: Held},
				{rec: other, status: Forked}, {rec: other, status: Duplicate},
				{rec: fb.recs[2], err: "forked", errIs: ErrNodeFork},
				{rec: alt.add(KindLimits, &LimitsBody{RequestsPerMinute: 5}), err: "forked", errIs: ErrNodeFork}}
		}, []string{fx.a1.ID()}, 1},
		{"fork found among held records", func(t *testing.T) []step {
			fb := newFeed(t, fx.a1).standard()
			alt := &feedBuilder{t: t, node: fx.a1, key: fx.a1.Key, recs: fb.recs[:2:2]}
			other := alt.add(KindPosture, &PostureBody{Classification: "OFFICIAL"})
			return []step{{rec: fb.recs[0], status: Applied, applied: 1}, {rec: fb.recs[2], status: Held},
				{rec: other, status: Held}, {rec: fb.recs[1], status: Applied, applied: 2}}
		}, []string{fx.a1.ID()}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLog()
			for i, s := range tc.steps(t) {
				tr := s.trust
				if tr.roots == nil {
					tr = fx.both
				}
				res, err := l.Add(s.rec, tr)
				if s.err != "" {
					if err == nil || !strings.Contains(err.Error(), s.err) {
						t.Fatalf("step %d: err = %v, want %q", i, err, s.err)
					}
					if s.errIs != nil && !errors.Is(err, s.errIs) {
						t.Fatalf("step %d: err = %v, want errors.Is %v", i, err, s.errIs)
					}
					continue
				}
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if res.Status != s.status || s.status == Applied && res.Applied != s.applied {
					t.Fatalf("step %d: got %v (applied %d), want %v (applied %d)", i, res.Status, res.Applied, s.status, s.applied)
				}
			}
			var got []string
			for _, v := range l.View() {
				got = append(got, v.Node)
				if v.Forked != (tc.forks > 0) {
					t.Errorf("node %s forked = %v", v.Node, v.Forked)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(sortedIDs(tc.nodes)) {
				t.Errorf("View nodes = %v, want %v", got, sortedIDs(tc.nodes))
			}
			if n := len(l.Forks()); n != tc.forks {
				t.Errorf("%d forks, want %d", n, tc.forks)
			}
			for _, fk := range l.Forks() {
				a, _ := Parse(fk.First)
				b, _ := Parse(fk.Other)
				if a == nil || b == nil || a.Seq != fk.Seq || b.Seq != fk.Seq || a.Node != b.Node {
					t.Errorf("fork evidence is not two records of one (node, seq)")
				}
			}
		})
	}
}

func sortedIDs(ids []string) []string {
	m := map[string]bool{}
	for _, id := range ids {
		m[id] = true
	}
	out := make([]string, 0, len(m))
	for id := range maps.Keys(m) {
		out = append(out, id)
	}
	slicesSort(out)
	return out
}

func TestView(t *testing.T) {
	fx := newFixture(t)
	fb := newFeed(t, fx.a1).standard()
	l := NewLog()
	mustAdd(t, l, fx.both, fb.recs...)
	v := l.View()[0]
	if v.Name != "a1" || v.Institution != fx.rootA.ID("root") || v.Attestation != "software" || v.Posture != "SECRET" ||
		len(v.Brains) != 2 || !v.HasLimits || v.RequestsPerMinute != 600 || v.AuditSchema != "oar/1" ||
		v.Endpoints == nil || v.Endpoints.Fleet != "127.0.0.2:7946" || v.Seq != 5 {
		t.Fatalf("view = %+v", v)
	}
	mustAdd(t, l, fx.both,
		fb.add(KindWithdraw, &WithdrawBody{Kind: KindBrains, Brain: "legal"}),
		fb.add(KindWithdraw, &WithdrawBody{Kind: KindEndpoints}),
		fb.add(KindWithdraw, &WithdrawBody{Kind: KindLimits}))
	v = l.View()[0]
	if len(v.Brains) != 1 || v.Brains[0].ID != "redact" || v.Endpoints != nil || v.HasLimits || v.Posture != "SECRET" {
		t.Fatalf("after withdrawals view = %+v", v)
	}
	mustAdd(t, l, fx.both, fb.add(KindWithdraw, &WithdrawBody{Kind: KindBrains}), fb.add(KindWithdraw, &WithdrawBody{Kind: KindPosture}))
	if v = l.View()[0]; len(v.Brains) != 0 || v.Posture != "" {
		t.Fatalf("after withdrawing all brains and posture view = %+v", v)
	}
	// View is a copy: changing it changes nothing in the log.
	w := l.View()
	w[0].Name = "x"
	if l.View()[0].Name != "a1" {
		t.Fatal("View shares memory with the log")
	}
}

// TestAntiEntropy: two logs that exchange digests and the records the other lacks
// converge on the same set, whatever order the records reached them in.
func TestAntiEntropy(t *testing.T) {
	fx := newFixture(t)
	a1, a2, b1 := newFeed(t, fx.a1).standard(), newFeed(t, fx.a2).standard(), newFeed(t, fx.b1).standard()
	b1.add(KindWithdraw, &WithdrawBody{Kind: KindBrains, Brain: "legal"})
	x, y := NewLog(), NewLog()
	mustAdd(t, x, fx.both, a1.recs...)
	mustAdd(t, x, fx.both, a2.recs[:4]...)
	mustAdd(t, y, fx.both, b1.recs...)
	mustAdd(t, y, fx.both, a2.recs[0])
	mustAdd(t, y, fx.both, a2.recs[4:]...) // held in y until the gap is filled
	var rounds int
	for rounds = 1; rounds < 10; rounds++ {
		for _, r := range x.Missing(y.Digest()) {
			if _, err := y.Add(r, fx.both); err != nil && !errors.Is(err, ErrNodeFork) {
				t.Fatal(err)
			}
		}
		for _, r := range y.Missing(x.Digest()) {
			if _, err := x.Add(r, fx.both); err != nil && !errors.Is(err, ErrNodeFork) {
				t.Fatal(err)
			}
		}
		if maps.Equal(x.Digest(), y.Digest()) && len(x.Missing(y.Digest())) == 0 {
			break
		}
	}
	if !maps.Equal(x.Digest(), y.Digest()) {
		t.Fatalf("no convergence after %d rounds:\n%v\n%v", rounds, x.Digest(), y.Digest())
	}
	if len(x.Digest()) != 3 || x.Digest()[fx.a2.ID()].Seq != 5 {
		t.Fatalf("digest = %v", x.Digest())
	}
	if !reflect.DeepEqual(x.View(), y.View()) {
		t.Fatalf("views differ:\n%v\n%v", x.View(), y.View())
	}
	t.Logf("converged in %d rounds", rounds)
}

func TestAntiEntropySpreadsForks(t *testing.T) {
	fx := newFixture(t)
	fb := newFeed(t, fx.a1).standard()
	alt := &feedBuilder{t: t, node: fx.a1, key: fx.a1.Key, recs: fb.recs[:2:2]}
	alt.add(KindLimits, &LimitsBody{RequestsPerMinute: 1})
	x, y := NewLog(), NewLog()
	mustAdd(t, x, fx.both, fb.recs...)
	mustAdd(t, y, fx.both, alt.recs...)
	for range 3 {
		for _, r := range x.Missing(y.Digest()) {
			y.Add(r, fx.both)
		}
		for _, r := range y.Missing(x.Digest()) {
			x.Add(r, fx.both)
		}
	}
	if len(x.Forks()) != 1 || len(y.Forks()) != 1 || !x.View()[0].Forked || !y.View()[0].Forked {
		t.Fatalf("forks: x %d, y %d", len(x.Forks()), len(y.Forks()))
	}
}

func TestSinceBatch(t *testing.T) {
	fx := newFixture(t)
	fb := newFeed(t, fx.a1).standard()
	l := NewLog()
	mustAdd(t, l, fx.both, fb.recs...)
	if got := l.Since(fx.a1.ID(), 4); len(got) != 2 || string(got[0]) != string(fb.recs[4]) {
		t.Fatalf("Since(4) = %d records", len(got))
	}
	if got := l.Since(fx.a1.ID(), 9); len(got) != 0 {
		t.Fatalf("Since past the head = %d records", len(got))
	}
	if got := l.Since("node_unknown", 0); got != nil {
		t.Fatal("Since of an unknown node")
	}
	f, ok := l.Feed(fx.a1.ID())
	if !ok || len(f.Records) != 6 || f.Forked {
		t.Fatalf("Feed = %v %v", len(f.Records), ok)
	}
}

func TestHeldLimit(t *testing.T) {
	fx := newFixture(t)
	fb := newFeed(t, fx.a1)
	for range MaxHeldPerNode + 1 {
		fb.add(KindLimits, &LimitsBody{RequestsPerMinute: 1})
	}
	l := NewLog()
	for i, r := range fb.recs[2:] {
		_, err := l.Add(r, fx.both)
		if i < MaxHeldPerNode && err != nil {
			t.Fatalf("record %d: %v", i+2, err)
		}
		if i == MaxHeldPerNode && !errors.Is(err, ErrHeldFull) {
			t.Fatalf("record %d beyond MaxHeldPerNode: err = %v", i+2, err)
		}
	}
	res, err := l.Add(fb.recs[0], fx.both)
	if err != nil || res.Applied != 1 {
		t.Fatal(res, err)
	}
	res, err = l.Add(fb.recs[1], fx.both)
	if err != nil || res.Applied != 1+MaxHeldPerNode {
		t.Fatal(res, err)
	}
	if l.nheld != 0 || len(l.held) != 0 {
		t.Fatalf("held records left: %d", l.nheld)
	}
}

func TestConcurrentAdd(t *testing.T) {
	fx := newFixture(t)
	feeds := []*feedBuilder{newFeed(t, fx.a1).standard(), newFeed(t, fx.a2).standard(), newFeed(t, fx.b1).standard()}
	l := NewLog()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 6 {
				for _, fb := range feeds {
					// Each worker walks the feeds from a different end.
					j := i
					if w%2 == 1 {
						j = 5 - i
					}
					if _, err := l.Add(fb.recs[j], fx.both); err != nil {
						t.Error(err)
					}
					l.View()
					l.Digest()
				}
			}
		})
	}
	wg.Wait()
	d := l.Digest()
	for _, fb := range feeds {
		if d[fb.node.ID()].Seq != 5 {
			t.Fatalf("digest = %v", d)
		}
	}
}
