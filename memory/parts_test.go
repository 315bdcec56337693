package memory

import (
	"cmp"
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"testing"

	"github.com/sios-project/sios/policy"
)

// partsStore is a store of 2,400 memories over 60 subjects, which fall in every part.
func partsStore(t *testing.T) *Store {
	t.Helper()
	s := openStore(t, t.TempDir())
	fill(t, s, secretTenant, 2400, 60, newTextGen(5))
	hx := newHasher(s.indexKey(secretTenant))
	seen := map[int]bool{}
	for i := range 60 {
		seen[partOf(hx.scope(fmt.Sprintf("subject-%05d", i)))] = true
	}
	if len(seen) != indexParts {
		t.Fatalf("60 subjects fall in %d of %d parts; the tests below would prove less", len(seen), indexParts)
	}
	return s
}

// Each subject's entries are in its part and in no other.
func TestIndexPartHoldsItsSubjects(t *testing.T) {
	s := partsStore(t)
	defer s.Close()
	hx := newHasher(s.indexKey(secretTenant))
	for i := range 60 {
		scope := hx.scope(fmt.Sprintf("subject-%05d", i))
		for k := range indexParts {
			var n int
			q := fmt.Sprintf("SELECT count(*) FROM %[1]s WHERE %[1]s MATCH ?", partTable(k))
			if err := s.r.QueryRow(q, "scope : "+scope).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if want := 40 * boolInt(k == partOf(scope)); n != want {
				t.Errorf("subject-%05d: %d entries in part %d, want %d", i, n, k, want)
			}
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// A tenant's search ranks the matches of all the parts together: its results are the
// best of the results of every subject's own search (which reads one part and scores
// a memory as the tenant's search does), and when every word is common they are the
// newest memories holding them, from whichever part.
func TestSearchAcrossParts(t *testing.T) {
	ctx := context.Background()
	s := partsStore(t)
	defer s.Close()
	for _, text := range []string{vocab[8] + " " + vocab[50], vocab[20], vocab[30] + " " + vocab[31] + " " + vocab[200]} {
		got, err := s.Search(ctx, Query{Tenant: secretTenant, Clearance: policy.TopSecret, Text: text, Limit: 15})
		if err != nil {
			t.Fatal(err)
		}
		var all []Result
		for i := range 60 {
			res, err := s.Search(ctx, Query{Tenant: secretTenant, Subject: fmt.Sprintf("subject-%05d", i), Clearance: policy.TopSecret, Text: text, Limit: MaxLimit})
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, res...)
		}
		if len(all) < 20 {
			t.Fatalf("%q: %d matches in all; the comparison would prove little", text, len(all))
		}
		slices.SortStableFunc(all, func(a, b Result) int { return cmp.Compare(b.Score, a.Score) })
		if len(got) != 15 {
			t.Fatalf("%q: %d results, want 15", text, len(got))
		}
		parts := map[int]bool{}
		for i, r := range got {
			if r.Score != all[i].Score {
				t.Errorf("%q: result %d scores %v, the %dth best of the subjects' searches %v", text, i, r.Score, i, all[i].Score)
			}
			parts[partOf(newHasher(s.indexKey(secretTenant)).scope(r.Subject))] = true
		}
		if len(parts) < 2 {
			t.Errorf("%q: results from %d part; the test needs matches from several", text, len(parts))
		}
	}

	// Every word common (the two most frequent words are in most memories): the
	// newest memories holding both, from all the parts.
	text := vocab[0] + " " + vocab[1]
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	sel, err := s.selective(ctx, tx, &s.tenantSearch, "", newHasher(s.indexKey(secretTenant)).terms(text))
	tx.Rollback()
	if err != nil || len(sel) != 0 {
		t.Fatalf("%q: %d of its words are not common (%v); the newest-first path would not be taken", text, len(sel), err)
	}
	got, err := s.Search(ctx, Query{Tenant: secretTenant, Clearance: policy.TopSecret, Text: text, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	rows, err := s.r.Query("SELECT id, sealed, subject FROM memories ORDER BY rid DESC")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for rows.Next() && len(want) < 10 {
		var id, subject string
		var sealed []byte
		if err := rows.Scan(&id, &sealed, &subject); err != nil {
			t.Fatal(err)
		}
		ex, err := s.Export(ctx, secretTenant, subject)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ex.Memories {
			if m.ID == id && hasWords(m.Text, vocab[0], vocab[1]) {
				want = append(want, id)
			}
		}
	}
	rows.Close()
	var ids []string
	for _, r := range got {
		ids = append(ids, r.ID)
	}
	slices.Sort(ids)
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Errorf("common words: got %v, want the newest holding both %v", ids, want)
	}
}

func hasWords(text string, ws ...string) bool {
	have := map[string]bool{}
	for _, w := range words(text) {
		have[w] = true
	}
	for _, w := range ws {
		if !have[w] {
			return false
		}
	}
	return true
}

// A forget merges its subject's part only: every other part's pages are as they were.
func TestForgetMergesOnlyItsPart(t *testing.T) {
	ctx := context.Background()
	s := partsStore(t)
	defer s.Close()
	digest := func() [indexParts][32]byte {
		var out [indexParts][32]byte
		for k := range indexParts {
			rows, err := s.r.Query(fmt.Sprintf("SELECT id, block FROM %s_data ORDER BY id", partTable(k)))
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			for rows.Next() {
				var id int64
				var block []byte
				if err := rows.Scan(&id, &block); err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(h, "%d:%x;", id, block)
			}
			rows.Close()
			copy(out[k][:], h.Sum(nil))
		}
		return out
	}
	before := digest()
	const subject = "subject-00007"
	if _, err := s.Forget(ctx, secretTenant, subject); err != nil {
		t.Fatal(err)
	}
	after := digest()
	forgotten := partOf(newHasher(s.indexKey(secretTenant)).scope(subject))
	for k := range indexParts {
		if changed := before[k] != after[k]; changed != (k == forgotten) {
			t.Errorf("part %d changed: %v; the forgotten subject's part is %d", k, changed, forgotten)
		}
	}
	if p, err := s.purgePending(ctx); err != nil || p != 0 {
		t.Errorf("purge pending after forget: %b, %v", p, err)
	}
}
