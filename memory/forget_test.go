package memory

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sios-project/sios/policy"
)

// secretTexts are the forgotten subject's memories: distinctive sentences of about 200
// bytes whose every 8-byte run is checked for after the forget.
var secretTexts = []string{
	"Quixotic harbourmaster Wendeline Okonkwo-Brightwater confided that the Zanzibar ledger of 1987 was falsified by Ignatius Pemberton-Vale, who hid the originals beneath floor tile forty-seven.",
	"Patient reference XQ-7741-ZETA reported vertiginous episodes after ingesting marmalade laced with hypothetical compound Glorbifex; the attending registrar Philippa Quenby-Sotherton escalated it.",
	"Procurement dossier Halcyon-Umbra: the supplier Frobisher & Lindqvist Maritime quoted 3,418,992.17 pounds for seventeen amphibious dredgers, conditional on the Wexford quayside easement of March.",
}

const (
	secretTenant  = "tenant-north"
	secretSubject = "subject-wendeline-okonkwo-brightwater"
	secretSource  = "interview-transcript-kappa-9931"
)

// needlesFor returns every 8-byte run of each text, in its own and its lowercase form.
func needlesFor(texts ...string) [][]byte {
	var out [][]byte
	for _, t := range texts {
		out = append(out, runs([]byte(t), 8)...)
		out = append(out, runs([]byte(strings.ToLower(t)), 8)...)
	}
	return out
}

type sealedRow struct {
	id, tokens string
	sealed     []byte
}

// rawSecrets reads, from the database, what the forgotten subject leaves in it while it
// exists: the sealed texts and the index tokens of words found only in its memories.
func rawSecrets(t *testing.T, s *Store, others []string) (sealed [][]byte, tokens []string) {
	t.Helper()
	rows, err := s.r.Query("SELECT sealed FROM memories WHERE tenant = ? AND subject = ?", secretTenant, secretSubject)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var b []byte
		rows.Scan(&b)
		sealed = append(sealed, b)
	}
	rows.Close()
	common := map[string]bool{}
	for _, o := range others {
		for _, w := range words(o) {
			common[w] = true
		}
	}
	h := newHasher(s.indexKey(secretTenant))
	for _, st := range secretTexts {
		for _, w := range words(st) {
			if !common[w] && len(w) >= 4 {
				tokens = append(tokens, h.token(w))
			}
		}
	}
	return sealed, tokens
}

// vocabConn is a read connection to the store with temp.vocab0 … temp.vocab7, the
// vocabularies of the index's parts (fts5vocab, one row per term).
func vocabConn(t *testing.T, s *Store) *sql.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := s.r.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for k := range indexParts {
		q := fmt.Sprintf("CREATE VIRTUAL TABLE IF NOT EXISTS temp.vocab%d USING fts5vocab(main, %s, row)", k, partTable(k))
		if _, err := conn.ExecContext(ctx, q); err != nil {
			conn.Close()
			t.Fatal(err)
		}
	}
	return conn
}

// vocabHas reports which of the tokens the vocabulary of any index part still holds.
func vocabHas(t *testing.T, s *Store, tokens []string) []string {
	t.Helper()
	ctx := context.Background()
	conn := vocabConn(t, s)
	defer conn.Close()
	var left []string
	for _, tok := range tokens {
		for k := range indexParts {
			var n int
			if err := conn.QueryRowContext(ctx, fmt.Sprintf("SELECT count(*) FROM temp.vocab%d WHERE term = ?", k), tok).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n > 0 {
				left = append(left, tok)
				break
			}
		}
	}
	return left
}

// staleSeparators returns the page separators of the index's parts that begin no term
// of their part's vocabulary. FTS5 finds a term's leaf page by a separator in the
// part's %_idx table: a prefix of the page's first term, as short as tells it from the
// previous page's last. A separator made from a term that is gone is a prefix of that
// term — a few hex digits of a forgotten token, too short for the 8-byte runs traces
// looks for, but enough, for whoever holds the tenant's index key, to narrow a
// dictionary to a word or two. The purge's merge makes every separator of a part again
// from the terms that remain; FTS5's own 'secure-delete' leaves a page's separator
// when it deletes the page's first term.
func staleSeparators(t *testing.T, s *Store) []string {
	t.Helper()
	ctx := context.Background()
	conn := vocabConn(t, s)
	defer conn.Close()
	var stale []string
	n := 0
	for k := range indexParts {
		var vocab []string
		rows, err := conn.QueryContext(ctx, fmt.Sprintf("SELECT term FROM temp.vocab%d ORDER BY term", k))
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				t.Fatal(err)
			}
			vocab = append(vocab, v)
		}
		rows.Close()
		rows, err = conn.QueryContext(ctx, "SELECT term FROM "+partTable(k)+"_idx")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var sep []byte
			if err := rows.Scan(&sep); err != nil {
				t.Fatal(err)
			}
			n++
			// Terms of the main index carry the prefix byte '0'; an empty separator
			// (a segment's first page) begins every term.
			p := string(bytes.TrimPrefix(sep, []byte("0")))
			i, _ := slices.BinarySearch(vocab, p)
			if i == len(vocab) || !strings.HasPrefix(vocab[i], p) {
				stale = append(stale, p)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	if n == 0 {
		t.Fatal("the index has no page separators; the check would prove nothing")
	}
	return stale
}

// TestForgetLeavesNoTrace is the property the memory store exists for: after Forget, no
// 8-byte run of the forgotten text — nor of its ciphertext, nor its subject, source or
// index tokens — is in any file under the data directory, open or closed, while other
// subjects' memories still search and decrypt.
func TestForgetLeavesNoTrace(t *testing.T) {
	tests := []struct {
		name   string
		filler int  // other memories in the store
		big    bool // add one memory of 100 KiB (overflow pages)
		expire bool // forget through Expire instead of Forget
		reader bool // hold an idle read connection across the forget
	}{
		{name: "small store", filler: 0},
		{name: "store of 3000 memories", filler: 3000},
		{name: "memory on overflow pages", filler: 500, big: true},
		{name: "idle reader during forget", filler: 500, reader: true},
		{name: "through Expire", filler: 500, expire: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
			s, err := Open(dir, Options{Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { s.Close() }()
			others := []NewMemory{
				{Tenant: secretTenant, Subject: "subject-other", Classification: policy.Official, Source: "note", Text: "The quarterly harbour survey found the quayside sound and the dredgers idle."},
				{Tenant: "tenant-south", Subject: "subject-south", Classification: policy.Official, Source: "note", Text: "Another tenant: the marmalade audit closed without findings."},
			}
			var otherTexts []string
			for _, o := range others {
				otherTexts = append(otherTexts, o.Text)
			}
			if _, err := s.AddBatch(ctx, others); err != nil {
				t.Fatal(err)
			}
			if tc.filler > 0 {
				fill(t, s, secretTenant, tc.filler, 100, newTextGen(3))
			}
			texts := append([]string(nil), secretTexts...)
			if tc.big {
				var b strings.Builder
				for i := 0; b.Len() < 100<<10; i++ {
					fmt.Fprintf(&b, "Overflowing confidential paragraph %d about Wendeline Okonkwo-Brightwater and the Zanzibar ledger. ", i)
				}
				texts = append(texts, b.String())
			}
			if tc.expire {
				now = now.Add(-48 * time.Hour) // the subject's memories are two days older
			}
			for i, text := range texts {
				// Separate transactions, so the WAL holds several versions of pages.
				if _, err := s.Add(ctx, NewMemory{Tenant: secretTenant, Subject: secretSubject, Classification: policy.Levels()[i%4], Source: secretSource, Text: text}); err != nil {
					t.Fatal(err)
				}
			}
			now = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
			res, err := s.Search(ctx, Query{Tenant: secretTenant, Clearance: policy.TopSecret, Text: "Zanzibar ledger Glorbifex Halcyon-Umbra"})
			if err != nil {
				t.Fatal(err)
			}
			if len(res) < 3 || res[0].Subject != secretSubject {
				t.Fatalf("before forget, search found %d results (first %+v), want the subject's memories", len(res), res)
			}
			sealed, tokens := rawSecrets(t, s, otherTexts)
			if left := vocabHas(t, s, tokens); len(left) != len(tokens) {
				t.Fatalf("before forget the index holds %d of %d tokens; the check below would prove nothing", len(left), len(tokens))
			}
			if got := traces(t, dir, map[string][][]byte{"ciphertext": runsOf(sealed, 16)}); len(got) == 0 {
				t.Fatal("before forget no ciphertext is found in the files; the check below would prove nothing")
			}
			if tc.reader {
				conn, err := s.r.Conn(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
			}

			if tc.expire {
				fs, err := s.Expire(ctx, now, Retention{PerTenant: map[string]time.Duration{secretTenant: 24 * time.Hour}})
				if err != nil {
					t.Fatalf("Expire: %v", err)
				}
				if len(fs) != 1 || fs[0].Subject != secretSubject || len(fs[0].IDs) != len(texts) {
					t.Fatalf("Expire forgot %+v, want the %d memories of %s", fs, len(texts), secretSubject)
				}
			} else {
				f, err := s.Forget(ctx, secretTenant, secretSubject)
				if err != nil {
					t.Fatalf("Forget: %v", err)
				}
				if len(f.IDs) != len(texts) {
					t.Fatalf("Forget destroyed %d memories, want %d", len(f.IDs), len(texts))
				}
			}

			needles := map[string][][]byte{
				"plaintext run":  needlesFor(texts...),
				"ciphertext run": runsOf(sealed, 16),
				"subject":        {[]byte(secretSubject)},
				"source":         {[]byte(secretSource)},
				"index token":    tokenNeedles(tokens),
			}
			check := func(stage string) {
				t.Helper()
				for _, hit := range traces(t, dir, needles) {
					t.Errorf("%s: %s", stage, hit)
				}
			}
			check("store open")
			if left := vocabHas(t, s, tokens); len(left) > 0 {
				t.Errorf("index vocabulary still holds %d tokens of the forgotten subject", len(left))
			}
			if stale := staleSeparators(t, s); len(stale) > 0 {
				t.Errorf("%d index page separators begin no remaining term (prefixes of forgotten tokens), e.g. %q", len(stale), stale[0])
			}
			checkIntegrity(t, s)
			checkOthers(t, s)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			check("store closed")
			s = openStore(t, dir)
			check("store reopened")
			checkOthers(t, s)
			if _, err := s.Export(ctx, secretTenant, secretSubject); !errors.Is(err, ErrUnknownSubject) {
				t.Errorf("Export after forget: %v, want ErrUnknownSubject", err)
			}
			res, err = s.Search(ctx, Query{Tenant: secretTenant, Clearance: policy.TopSecret, Subject: secretSubject, Text: "Zanzibar ledger Glorbifex Halcyon-Umbra"})
			if err != nil || len(res) != 0 {
				t.Errorf("Search after forget: %d results, %v", len(res), err)
			}
		})
	}
}

// checkIntegrity asserts that the database and its full-text index are consistent —
// the purge rewrites pages and the index is kept by naming tokens again, so a mistake
// in either shows here.
func checkIntegrity(t *testing.T, s *Store) {
	t.Helper()
	var res string
	if err := s.w.QueryRow("PRAGMA integrity_check").Scan(&res); err != nil || res != "ok" {
		t.Errorf("database integrity: %q, %v", res, err)
	}
	for k := range indexParts {
		q := fmt.Sprintf("INSERT INTO %[1]s(%[1]s, rank) VALUES('integrity-check', 0)", partTable(k))
		if _, err := s.w.Exec(q); err != nil {
			t.Errorf("index part %d integrity: %v", k, err)
		}
	}
}

func runsOf(bs [][]byte, n int) [][]byte {
	var out [][]byte
	for _, b := range bs {
		out = append(out, runs(b, n)...)
	}
	return out
}

func tokenNeedles(tokens []string) [][]byte {
	var out [][]byte
	for _, t := range tokens {
		out = append(out, []byte(t))
	}
	return out
}

// checkOthers asserts the memories that were not forgotten still search and decrypt.
func checkOthers(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	for _, c := range []struct{ tenant, query, want string }{
		{secretTenant, "quarterly harbour survey", "subject-other"},
		{"tenant-south", "marmalade audit", "subject-south"},
	} {
		res, err := s.Search(ctx, Query{Tenant: c.tenant, Clearance: policy.TopSecret, Text: c.query})
		if err != nil {
			t.Fatalf("search %q: %v", c.query, err)
		}
		if len(res) == 0 || res[0].Subject != c.want || !strings.Contains(strings.ToLower(res[0].Text), strings.Fields(c.query)[0]) {
			t.Errorf("search %q in %s: %+v, want %s's memory", c.query, c.tenant, res, c.want)
		}
	}
	e, err := s.Export(ctx, "tenant-south", "subject-south")
	if err != nil || len(e.Memories) != 1 || !bytes.Contains([]byte(e.Memories[0].Text), []byte("marmalade")) {
		t.Errorf("export of the other tenant's subject: %+v, %v", e, err)
	}
}

// TestForgetAfterBulkLoadLeavesNoTrace forgets a subject whose memories arrived inside
// bulk loads, mixed with thousands of others and followed by more, so that SQLite and
// FTS5 have split, merged and moved the pages and index segments that hold them (the
// state in which a purge is cheapest to get wrong), and forgets it at once, with the
// store still open. Then no run of anything the subject left — text, ciphertext,
// subject, source, wrapped data key, index tokens, the subject's scope token — may be
// in any file: the database (live pages, the unused space inside them, free pages),
// the WAL or the shared-memory index.
func TestForgetAfterBulkLoadLeavesNoTrace(t *testing.T) {
	for _, tc := range []struct {
		name   string
		expire bool
	}{{"Forget", false}, {"Expire", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
			old := now.Add(-48 * time.Hour)
			clock := now
			s, err := Open(dir, Options{Now: func() time.Time { return clock }})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { s.Close() }()
			g := newTextGen(41)
			// Each batch is a transaction and so a new index segment; the subject's
			// memories go into the middle of five of them.
			var secret []string
			var kept NewMemory // a memory that stays, to search for afterwards
			for b := 0; b < 8; b++ {
				if tc.expire && b < 5 {
					clock = old // Expire takes the subject's memories, which are older
				} else {
					clock = now
				}
				batch := make([]NewMemory, 0, 1000)
				for i := 0; i < 1000; i++ {
					nm := NewMemory{Tenant: secretTenant, Subject: fmt.Sprintf("subject-%05d", i%300),
						Classification: policy.Levels()[i%4], Source: "filler", Text: g.text(30)}
					if b < 5 && i%100 == 50 {
						text := secretTexts[len(secret)%len(secretTexts)]
						if len(secret) >= len(secretTexts) {
							text = fmt.Sprintf("Bulk canary %d: Wendeline Okonkwo-Brightwater's ledger entry %d is Glorbifex-%d.", len(secret), len(secret)*7919, len(secret)*104729)
						}
						nm = NewMemory{Tenant: secretTenant, Subject: secretSubject, Classification: policy.Levels()[i%4], Source: secretSource, Text: text}
						secret = append(secret, text)
					}
					if tc.expire && b < 5 && nm.Subject != secretSubject {
						nm.Tenant = "tenant-kept" // only the subject's memories expire
					}
					if b == 6 && i == 7 {
						kept = nm
					}
					batch = append(batch, nm)
				}
				if _, err := s.AddBatch(ctx, batch); err != nil {
					t.Fatal(err)
				}
			}
			clock = now
			var wrapped []byte
			if err := s.r.QueryRow("SELECT wrapped FROM keys WHERE tenant = ? AND subject = ?", secretTenant, secretSubject).Scan(&wrapped); err != nil {
				t.Fatal(err)
			}
			sealed, tokens := rawSecrets(t, s, nil)
			h := newHasher(s.indexKey(secretTenant))
			scope := h.scope(secretSubject)
			for _, text := range secret {
				for _, w := range words(text) {
					if len(w) >= 6 && strings.ContainsAny(w, "0123456789") || w == "glorbifex" || w == "okonkwo" {
						tokens = append(tokens, h.token(w))
					}
				}
			}
			if left := vocabHas(t, s, append(tokens, scope)); len(left) == 0 {
				t.Fatal("before forget the index holds none of the subject's tokens; the check below would prove nothing")
			}
			needles := map[string][][]byte{
				"plaintext run":  needlesFor(secret...),
				"ciphertext run": runsOf(sealed, 16),
				"wrapped key":    runs(wrapped, 16),
				"subject":        {[]byte(secretSubject)},
				"source":         {[]byte(secretSource)},
				"index token":    tokenNeedles(tokens),
				"scope token":    {[]byte(scope)},
			}
			if got := traces(t, dir, needles); len(got) == 0 {
				t.Fatal("before forget nothing of the subject is found in the files; the check below would prove nothing")
			}

			if tc.expire {
				fs, err := s.Expire(ctx, now, Retention{PerTenant: map[string]time.Duration{secretTenant: 24 * time.Hour}})
				if err != nil {
					t.Fatalf("Expire: %v", err)
				}
				if len(fs) != 1 || fs[0].Subject != secretSubject || len(fs[0].IDs) != len(secret) || !fs[0].KeyDestroyed {
					t.Fatalf("Expire forgot %+v, want the %d memories of %s and its key", fs, len(secret), secretSubject)
				}
			} else {
				f, err := s.Forget(ctx, secretTenant, secretSubject)
				if err != nil {
					t.Fatalf("Forget: %v", err)
				}
				if len(f.IDs) != len(secret) || !f.KeyDestroyed {
					t.Fatalf("Forget: %+v, want %d memories and the key", f, len(secret))
				}
			}
			for _, hit := range traces(t, dir, needles) {
				t.Errorf("after forget: %s", hit)
			}
			if left := vocabHas(t, s, append(tokens, scope)); len(left) > 0 {
				t.Errorf("index vocabulary still holds %d tokens of the forgotten subject", len(left))
			}
			if stale := staleSeparators(t, s); len(stale) > 0 {
				t.Errorf("%d index page separators begin no remaining term (prefixes of forgotten tokens), e.g. %q", len(stale), stale[0])
			}
			checkIntegrity(t, s)
			res, err := s.Search(ctx, Query{Tenant: kept.Tenant, Clearance: policy.TopSecret, Subject: kept.Subject, Text: kept.Text})
			if err != nil || len(res) == 0 || res[0].Text != kept.Text {
				t.Errorf("search for a memory of another subject after forget: %+v, %v", res, err)
			}
		})
	}
}
