package memory

import (
	"context"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"math"
	"strings"
	"unicode"
)

// tokenLen is the number of hex digits of HMAC-SHA256 kept per word (64 bits).
const tokenLen = 16

// words lowercases text and splits it on everything that is not a letter, mark or digit.
func words(text string) []string {
	return strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.IsMark(r)
	})
}

// hasher turns words into index tokens under one tenant's index key. It caches the
// tokens it has made, so a batch of related texts hashes each word once. Not safe
// for concurrent use.
type hasher struct {
	mac   hash.Hash
	sum   []byte
	cache map[string]string
}

func newHasher(indexKey []byte) *hasher {
	return &hasher{mac: hmac.New(sha256.New, indexKey), cache: make(map[string]string)}
}

func (h *hasher) token(w string) string {
	if t, ok := h.cache[w]; ok {
		return t
	}
	h.mac.Reset()
	h.mac.Write([]byte(w))
	h.sum = h.mac.Sum(h.sum[:0])
	t := hex.EncodeToString(h.sum[:tokenLen/2])
	if len(h.cache) < 1<<16 {
		h.cache[w] = t
	}
	return t
}

// document is the text the full-text index holds for a memory: its words' tokens,
// space-separated, in order (so that positions and term frequencies stay true).
func (h *hasher) document(text string) string {
	ws := words(text)
	var b strings.Builder
	b.Grow(len(ws) * (tokenLen + 1))
	for i, w := range ws {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(h.token(w))
	}
	return b.String()
}

// terms returns the distinct tokens of the text's words, at most MaxQueryTerms, in
// the order the words first occur.
func (h *hasher) terms(text string) []string {
	var out []string
	seen := make(map[string]bool)
	for _, w := range words(text) {
		t := h.token(w)
		if seen[t] {
			continue
		}
		if len(out) == MaxQueryTerms {
			break
		}
		seen[t] = true
		out = append(out, t)
	}
	return out
}

// scope is the token that marks a memory's subject in the index. Words never contain
// a NUL, so no word's token can collide with it.
func (h *hasher) scope(subject string) string {
	return h.token("\x00subject\x00" + subject)
}

// indexTable is the full-text index. It is contentless: it holds tokens, never text.
// A memory's entries are deleted by naming its tokens again ('delete'), which writes
// delete markers; the purge's merge then drops the markers with the entries they
// cancel. (A contentless_delete table deletes without the tokens, by tombstones, but
// the merge then checks every entry of the index against them: after a bulk load that
// was most of the time a forget took.)
const indexTable = `CREATE VIRTUAL TABLE fts USING fts5(scope, tokens, content='', tokenize='ascii')`

// indexVersion names how the index is built: indexTable, and the tokens that words,
// hasher.document and hasher.scope make, which depend on Go's Unicode tables. Deleting
// a memory names the tokens its text makes now; that removes its entries only if they
// are the tokens its text made when it was added. So an index built another way is
// rebuilt (ensureIndexTx) before the store writes to it. Change this whenever any of
// them changes what it produces.
const indexVersion = "sios-memory-fts/2 unicode/" + unicode.Version

// ensureIndexTx rebuilds the index in tx unless it was built as this build builds it.
func (s *Store) ensureIndexTx(ctx context.Context, tx *sql.Tx) error {
	current, err := indexCurrentTx(ctx, tx)
	if err != nil || current {
		return err
	}
	return s.rebuildIndexTx(ctx, tx)
}

func indexCurrentTx(ctx context.Context, tx *sql.Tx) (bool, error) {
	var v string
	err := tx.QueryRowContext(ctx, "SELECT v FROM meta WHERE k = 'index'").Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("memory: read index version: %w", err)
	}
	return v == indexVersion, nil
}

// rebuildIndexTx replaces the index with one built from the memories' texts, each
// decrypted under its subject's key and tokenized as this build does. A memory whose
// text cannot be read (no data key, or it does not decrypt) is left out: there is
// nothing to find in it. The old index's pages are freed and, with secure_delete,
// zeroed; a purge is marked so that the copies the WAL holds go too.
func (s *Store) rebuildIndexTx(ctx context.Context, tx *sql.Tx) error {
	var old int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema WHERE name = 'fts'").Scan(&old); err != nil {
		return fmt.Errorf("memory: rebuild index: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "DROP TABLE IF EXISTS fts"); err != nil {
		return fmt.Errorf("memory: rebuild index: drop the old one: %w", err)
	}
	if _, err := tx.ExecContext(ctx, indexTable); err != nil {
		return fmt.Errorf("memory: rebuild index: %w", err)
	}

	ins, err := tx.PrepareContext(ctx, "INSERT INTO fts(rowid, scope, tokens) VALUES(?, ?, ?)")
	if err != nil {
		return fmt.Errorf("memory: rebuild index: %w", err)
	}
	defer ins.Close()
	type stored struct {
		rid                 int64
		id, tenant, subject string
		sealed              []byte
	}
	em := newEntryMaker(s)
	for after := int64(math.MinInt64); ; {
		rows, err := tx.QueryContext(ctx, "SELECT rid, id, tenant, subject, sealed FROM memories WHERE rid > ? ORDER BY rid LIMIT 512", after)
		if err != nil {
			return fmt.Errorf("memory: rebuild index: %w", err)
		}
		var batch []stored
		for rows.Next() {
			var m stored
			if err := rows.Scan(&m.rid, &m.id, &m.tenant, &m.subject, &m.sealed); err != nil {
				rows.Close()
				return fmt.Errorf("memory: rebuild index: %w", err)
			}
			batch = append(batch, m)
		}
		if err := rows.Close(); err != nil {
			return fmt.Errorf("memory: rebuild index: %w", err)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("memory: rebuild index: %w", err)
		}
		if len(batch) == 0 {
			break
		}
		for _, m := range batch {
			scope, doc, ok, err := em.entry(ctx, tx, m.tenant, m.subject, m.id, m.sealed)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if _, err := ins.ExecContext(ctx, m.rid, scope, doc); err != nil {
				return fmt.Errorf("memory: rebuild index: %w", err)
			}
		}
		after = batch[len(batch)-1].rid
	}
	if _, err := tx.ExecContext(ctx, "INSERT OR REPLACE INTO meta(k, v) VALUES('index', ?)", indexVersion); err != nil {
		return fmt.Errorf("memory: rebuild index: %w", err)
	}
	if old == 0 {
		return nil // a new store: there was nothing to scrub
	}
	return markPurgeTx(ctx, tx)
}

// entryMaker makes stored memories' index entries again from their sealed texts,
// unwrapping each subject's data key once. Not safe for concurrent use.
type entryMaker struct {
	s       *Store
	aeads   map[[2]string]cipher.AEAD // nil: the subject has no key that opens
	hashers map[string]*hasher
}

func newEntryMaker(s *Store) *entryMaker {
	return &entryMaker{s: s, aeads: make(map[[2]string]cipher.AEAD), hashers: make(map[string]*hasher)}
}

// entry returns a stored memory's index entry — its subject's scope token and its
// text's tokens — as Add made it. ok is false if the text cannot be read: its subject
// has no data key, or it does not decrypt.
func (e *entryMaker) entry(ctx context.Context, tx *sql.Tx, tenant, subject, id string, sealed []byte) (scope, doc string, ok bool, err error) {
	sk := [2]string{tenant, subject}
	aead, seen := e.aeads[sk]
	if !seen {
		var wrapped []byte
		err := tx.QueryRowContext(ctx, "SELECT wrapped FROM keys WHERE tenant = ? AND subject = ?", tenant, subject).Scan(&wrapped)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return "", "", false, fmt.Errorf("memory: read data key: %w", err)
		default:
			if k, err := e.s.unwrapDataKey(tenant, subject, wrapped); err == nil {
				aead = k.aead
			}
		}
		e.aeads[sk] = aead
	}
	if aead == nil {
		return "", "", false, nil
	}
	text, err := open(aead, sealed, frame(contentDomain, tenant, subject, id))
	if err != nil {
		return "", "", false, nil
	}
	defer clear(text)
	h := e.hashers[tenant]
	if h == nil {
		h = newHasher(e.s.indexKey(tenant))
		e.hashers[tenant] = h
	}
	return h.scope(subject), h.document(string(text)), true, nil
}
