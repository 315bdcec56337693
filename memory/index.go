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
	"strconv"
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

// The full-text index is split into indexParts parts, each its own FTS5 table
// (fts0 … fts7), and a subject's memories are all in one part: the one its scope
// token's first byte names (modulo indexParts). Forgetting a subject then merges only its part (see
// purge), which is what makes a forget's cost follow the part and not the whole index.
// A search of one subject reads its part; a search of a whole tenant reads every part
// and ranks their matches together by each part's BM25 (see Search).
const indexParts = 8

// partOf is the index part that holds the entries of the subject whose scope token is
// scope.
func partOf(scope string) int {
	b, _ := strconv.ParseUint(scope[:2], 16, 8) // a token is lowercase hex (hasher.token)
	return int(b) % indexParts
}

// partTable names index part k's table.
func partTable(k int) string { return "fts" + strconv.Itoa(k) }

// indexTable is index part k's table. It is contentless: it holds tokens, never text.
// A memory's entries are deleted by naming its tokens again ('delete'), which writes
// delete markers; the purge's merge then drops the markers with the entries they
// cancel. (A contentless_delete table deletes without the tokens, by tombstones, but
// the merge then checks every entry of the index against them: after a bulk load that
// was most of the time a forget took.)
func indexTable(k int) string {
	return "CREATE VIRTUAL TABLE " + partTable(k) + " USING fts5(scope, tokens, content='', tokenize='ascii')"
}

// The statements that add and delete a memory's entry in each part.
var insertEntry, deleteEntry [indexParts]string

func init() {
	for k := range indexParts {
		insertEntry[k] = "INSERT INTO " + partTable(k) + "(rowid, scope, tokens) VALUES(?, ?, ?)"
		deleteEntry[k] = "INSERT INTO " + partTable(k) + "(" + partTable(k) + ", rowid, scope, tokens) VALUES('delete', ?, ?, ?)"
	}
}

// allParts is the set of every index part, as a purge marker holds it (bit k: part k).
const allParts = 1<<indexParts - 1

// entryStatements runs one of insertEntry or deleteEntry in tx, preparing each part's
// statement when it is first used.
type entryStatements struct {
	tx      *sql.Tx
	queries *[indexParts]string
	st      [indexParts]*sql.Stmt
}

func prepareEntries(tx *sql.Tx, queries *[indexParts]string) *entryStatements {
	return &entryStatements{tx: tx, queries: queries}
}

// exec runs the statement of scope's part with the entry's row id, scope and tokens.
func (e *entryStatements) exec(ctx context.Context, rid int64, scope, doc string) error {
	k := partOf(scope)
	if e.st[k] == nil {
		st, err := e.tx.PrepareContext(ctx, e.queries[k])
		if err != nil {
			return err
		}
		e.st[k] = st
	}
	_, err := e.st[k].ExecContext(ctx, rid, scope, doc)
	return err
}

func (e *entryStatements) Close() {
	for _, st := range e.st {
		if st != nil {
			st.Close()
		}
	}
}

// indexVersion names how the index is built: indexParts, partOf, indexTable, and the
// tokens that words, hasher.document and hasher.scope make, which depend on Go's
// Unicode tables. Deleting a memory names the tokens its text makes now, in the part
// its subject's scope names now; that removes its entries only if they are the tokens
// its text made when it was added, in that part. So an index built another way is
// rebuilt (ensureIndexTx) before the store writes to it. Change this whenever any of
// them changes what it produces.
var indexVersion = "sios-memory-fts/3 parts/" + strconv.Itoa(indexParts) + " unicode/" + unicode.Version

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
	old, err := indexTablesTx(ctx, tx)
	if err != nil {
		return fmt.Errorf("memory: rebuild index: %w", err)
	}
	for _, name := range old {
		if _, err := tx.ExecContext(ctx, `DROP TABLE "`+strings.ReplaceAll(name, `"`, `""`)+`"`); err != nil {
			return fmt.Errorf("memory: rebuild index: drop the old %s: %w", name, err)
		}
	}
	for k := range indexParts {
		if _, err := tx.ExecContext(ctx, indexTable(k)); err != nil {
			return fmt.Errorf("memory: rebuild index: %w", err)
		}
	}
	ins := prepareEntries(tx, &insertEntry)
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
			if err := ins.exec(ctx, m.rid, scope, doc); err != nil {
				return fmt.Errorf("memory: rebuild index: %w", err)
			}
		}
		after = batch[len(batch)-1].rid
	}
	if _, err := tx.ExecContext(ctx, "INSERT OR REPLACE INTO meta(k, v) VALUES('index', ?)", indexVersion); err != nil {
		return fmt.Errorf("memory: rebuild index: %w", err)
	}
	if len(old) == 0 {
		return nil // a new store: there was nothing to scrub
	}
	return markPurgeTx(ctx, tx, allParts)
}

// indexTablesTx names the full-text tables in the database: the parts this build
// makes, the one table (fts) of earlier builds, and the parts of a build that split
// the index another way. Their shadow tables (fts0_data, …) go with them.
func indexTablesTx(ctx context.Context, tx *sql.Tx) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT name FROM sqlite_schema
		WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%' AND (name = 'fts' OR name GLOB 'fts[0-9]*')`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, rows.Err()
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
