package memory

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"unicode"

	"github.com/sios-project/sios/policy"
)

// Deleting a memory names the tokens its text makes now, so they must be what they were
// when it was added. This pins the tokenizer to its definition: if it fails, tokens
// changed — bump indexVersion so that stores are re-indexed.
func TestIndexTokensFollowTheirDefinition(t *testing.T) {
	key := []byte("index key")
	text := "Ünïcode STRASSE, naïve café—42 déjà-vu! 東京 x_y"
	want := []string{"ünïcode", "strasse", "naïve", "café", "42", "déjà", "vu", "東京", "x", "y"}
	if got := words(text); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("words(%q) = %q, want %q", text, got, want)
	}
	tok := func(w string) string {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(w))
		return hex.EncodeToString(m.Sum(nil))[:tokenLen]
	}
	var doc []string
	for _, w := range want {
		doc = append(doc, tok(w))
	}
	h := newHasher(key)
	if got := h.document(text); got != strings.Join(doc, " ") {
		t.Errorf("document = %q, want %q", got, strings.Join(doc, " "))
	}
	if got := h.scope("case-7"); got != tok("\x00subject\x00case-7") {
		t.Errorf("scope = %q, want %q", got, tok("\x00subject\x00case-7"))
	}
}

// A store whose index was built another way — by the contentless_delete table of
// earlier versions, or under another version's tokenizer — is re-indexed when it is
// opened, and again before a write if another build changed it meanwhile; it then
// searches and forgets as a new one does.
func TestIndexRebuiltWhenBuiltAnotherWay(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, s *Store) // makes the index look built another way
		op    string                       // "open", "add" or "forget": what meets it first
	}{
		{"earlier contentless_delete table, at Open", oldIndexTable, "open"},
		{"the last version's one table, at Open", oneIndexTable, "open"},
		{"another tokenizer version, at Open", otherIndexVersion, "open"},
		{"another tokenizer version, at Add", otherIndexVersion, "add"},
		{"another tokenizer version, at Forget", otherIndexVersion, "forget"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			s := openStore(t, dir)
			fill(t, s, secretTenant, 1500, 40, newTextGen(9))
			kept := NewMemory{Tenant: secretTenant, Subject: "subject-kept", Classification: policy.Official, Source: "note", Text: "The quarterly harbour survey found the quayside sound."}
			if _, err := s.AddBatch(ctx, []NewMemory{kept}); err != nil {
				t.Fatal(err)
			}
			for i, text := range secretTexts {
				if _, err := s.Add(ctx, NewMemory{Tenant: secretTenant, Subject: secretSubject, Classification: policy.Levels()[i%4], Source: secretSource, Text: text}); err != nil {
					t.Fatal(err)
				}
			}
			sealed, tokens := rawSecrets(t, s, []string{kept.Text})
			tc.setup(t, s)
			if tc.op == "open" {
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				s = openStore(t, dir)
				if ok := indexCurrent(t, s); !ok {
					t.Fatal("Open left an index built another way")
				}
			}
			defer func() { s.Close() }()
			if tc.op == "add" {
				if _, err := s.Add(ctx, NewMemory{Tenant: secretTenant, Subject: "subject-new", Classification: policy.Official, Source: "note", Text: "Zebra quokka xylophone."}); err != nil {
					t.Fatal(err)
				}
				if !indexCurrent(t, s) {
					t.Fatal("Add wrote to an index built another way")
				}
			}
			res, err := s.Search(ctx, Query{Tenant: secretTenant, Clearance: policy.TopSecret, Text: "quarterly harbour survey"})
			if err != nil || len(res) == 0 || res[0].Text != kept.Text {
				t.Fatalf("search after re-indexing: %+v, %v", res, err)
			}
			if left := vocabHas(t, s, tokens); len(left) != len(tokens) {
				t.Fatalf("the index holds %d of the subject's %d tokens before forget; the check below would prove nothing", len(left), len(tokens))
			}
			if _, err := s.Forget(ctx, secretTenant, secretSubject); err != nil {
				t.Fatalf("Forget: %v", err)
			}
			if !indexCurrent(t, s) {
				t.Error("after Forget the index is not built as this build builds it")
			}
			if left := vocabHas(t, s, tokens); len(left) > 0 {
				t.Errorf("index vocabulary still holds %d tokens of the forgotten subject", len(left))
			}
			needles := map[string][][]byte{
				"plaintext run":  needlesFor(secretTexts...),
				"ciphertext run": runsOf(sealed, 16),
				"subject":        {[]byte(secretSubject)},
				"index token":    tokenNeedles(tokens),
			}
			for _, hit := range traces(t, dir, needles) {
				t.Errorf("after forget: %s", hit)
			}
			checkIntegrity(t, s)
		})
	}
}

// oldIndexTable replaces the index with the contentless_delete table earlier versions
// built, holding the same entries, and forgets which version built it.
func oldIndexTable(t *testing.T, s *Store) {
	t.Helper()
	legacyIndex(t, s, []string{
		"CREATE VIRTUAL TABLE fts USING fts5(scope, tokens, content='', contentless_delete=1, tokenize='ascii')",
		"INSERT INTO fts(fts, rank) VALUES('secure-delete', 1)",
		"DELETE FROM meta WHERE k = 'index'",
	})
}

// oneIndexTable replaces the index with the one table of the version before the index
// had parts, holding the same entries, as that version recorded it.
func oneIndexTable(t *testing.T, s *Store) {
	t.Helper()
	legacyIndex(t, s, []string{
		"CREATE VIRTUAL TABLE fts USING fts5(scope, tokens, content='', tokenize='ascii')",
		"UPDATE meta SET v = 'sios-memory-fts/2 unicode/" + unicode.Version + "' WHERE k = 'index'",
	})
}

// legacyIndex replaces the index's parts with the table that setup makes, holding the
// same entries.
func legacyIndex(t *testing.T, s *Store, setup []string) {
	t.Helper()
	ctx := context.Background()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	for k := range indexParts {
		if _, err := tx.Exec("DROP TABLE " + partTable(k)); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range setup {
		if _, err := tx.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	rows, err := tx.Query("SELECT rid, id, tenant, subject, sealed FROM memories")
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		rid                 int64
		id, tenant, subject string
		sealed              []byte
	}
	var all []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.rid, &r.id, &r.tenant, &r.subject, &r.sealed); err != nil {
			t.Fatal(err)
		}
		all = append(all, r)
	}
	rows.Close()
	em := newEntryMaker(s)
	for _, r := range all {
		scope, doc, ok, err := em.entry(ctx, tx, r.tenant, r.subject, r.id, r.sealed)
		if err != nil || !ok {
			t.Fatalf("entry of %s: %v %v", r.id, ok, err)
		}
		if _, err := tx.Exec("INSERT INTO fts(rowid, scope, tokens) VALUES(?, ?, ?)", r.rid, scope, doc); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// otherIndexVersion records that another build made the index.
func otherIndexVersion(t *testing.T, s *Store) {
	t.Helper()
	if _, err := s.w.Exec("UPDATE meta SET v = 'sios-memory-fts/2 unicode/0.0.0' WHERE k = 'index'"); err != nil {
		t.Fatal(err)
	}
}

func indexCurrent(t *testing.T, s *Store) bool {
	t.Helper()
	var v string
	if err := s.r.QueryRow("SELECT v FROM meta WHERE k = 'index'").Scan(&v); err != nil {
		t.Fatal(err)
	}
	var tables []string
	rows, err := s.r.Query("SELECT sql FROM sqlite_schema WHERE (name = 'fts' OR name GLOB 'fts[0-9]*') AND sql LIKE 'CREATE VIRTUAL TABLE%' ORDER BY length(name), name")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var table string
		if err := rows.Scan(&table); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, table)
	}
	if len(tables) != indexParts {
		return false
	}
	for k, table := range tables {
		if table != indexTable(k) {
			return false
		}
	}
	return v == indexVersion
}

// A memory whose text no longer decrypts cannot have its index entry named again; its
// forget rebuilds the index without it instead, and leaves none of its tokens.
func TestForgetOfAMemoryThatDoesNotDecrypt(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	defer s.Close()
	fill(t, s, secretTenant, 1200, 30, newTextGen(17))
	kept := NewMemory{Tenant: secretTenant, Subject: "subject-kept", Classification: policy.Official, Source: "note", Text: "The quarterly harbour survey found the quayside sound."}
	if _, err := s.AddBatch(ctx, []NewMemory{kept}); err != nil {
		t.Fatal(err)
	}
	var damaged string
	for i, text := range secretTexts {
		m, err := s.Add(ctx, NewMemory{Tenant: secretTenant, Subject: secretSubject, Classification: policy.Levels()[i%4], Source: secretSource, Text: text})
		if err != nil {
			t.Fatal(err)
		}
		damaged = m.ID
	}
	_, tokens := rawSecrets(t, s, []string{kept.Text})
	if _, err := s.w.Exec("UPDATE memories SET sealed = zeroblob(length(sealed)) WHERE id = ?", damaged); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Export(ctx, secretTenant, secretSubject); err == nil || errors.Is(err, ErrUnknownSubject) {
		t.Fatalf("export of the damaged subject: %v, want a decryption error (else the test proves nothing)", err)
	}
	f, err := s.Forget(ctx, secretTenant, secretSubject)
	if err != nil || len(f.IDs) != len(secretTexts) {
		t.Fatalf("Forget: %+v, %v", f, err)
	}
	if left := vocabHas(t, s, tokens); len(left) > 0 {
		t.Errorf("index vocabulary still holds %d tokens of the forgotten subject", len(left))
	}
	for _, hit := range traces(t, dir, map[string][][]byte{"plaintext run": needlesFor(secretTexts...), "index token": tokenNeedles(tokens)}) {
		t.Errorf("after forget: %s", hit)
	}
	res, err := s.Search(ctx, Query{Tenant: secretTenant, Clearance: policy.TopSecret, Text: "quarterly harbour survey"})
	if err != nil || len(res) == 0 || res[0].Text != kept.Text {
		t.Errorf("search after the rebuild: %+v, %v", res, err)
	}
	checkIntegrity(t, s)
}
