package memory

import (
	"cmp"
	"context"
	"crypto/cipher"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sios-project/sios/policy"
)

// Query is a ranked search of one tenant's memories.
type Query struct {
	Tenant    string
	Subject   string       // if set, only this subject's memories
	Clearance policy.Level // only memories classified at or below it are returned
	Text      string       // words to look for, at most MaxQueryBytes
	Limit     int          // 0 means DefaultLimit; above MaxLimit means MaxLimit
	// Hide, if set, leaves out the memories of the subjects it returns true for (the
	// memories of roles the searcher does not hold): they are neither decrypted nor
	// returned, and the search may return fewer than Limit.
	Hide func(subject string) bool
}

// Result is a memory found by Search, with its relevance (higher is better).
type Result struct {
	Memory
	Score float64 `json:"score"`
}

// Search returns the tenant's memories that contain any of the query's words, ranked by
// BM25 (each index part's; see searchStatements), best first, with their text decrypted.
// It never returns another tenant's memory or one classified above q.Clearance. A query
// with no words returns no results.
//
// Words held by many memories (probeCap or more, in the subject if one is named) carry
// little weight in BM25 and would make ranking cost a scan of most of the tenant, so
// when the query has rarer words only those are searched for (rarest first, within
// matchBudget). When every word is common, the newest memories holding all the words
// (or, if none does, any of them) are returned, ranked by BM25 among themselves.
func (s *Store) Search(ctx context.Context, q Query) ([]Result, error) {
	if err := checkName("tenant", q.Tenant, true); err != nil {
		return nil, err
	}
	if err := checkName("subject", q.Subject, false); err != nil {
		return nil, err
	}
	if !q.Clearance.Valid() {
		return nil, fmt.Errorf("memory: clearance %v is not one of OFFICIAL, OFFICIAL-SENSITIVE, SECRET, TOP-SECRET", q.Clearance)
	}
	if len(q.Text) > MaxQueryBytes {
		return nil, fmt.Errorf("memory: query is %d bytes; the limit is %d (MaxQueryBytes)", len(q.Text), MaxQueryBytes)
	}
	limit := q.Limit
	switch {
	case limit <= 0:
		limit = DefaultLimit
	case limit > MaxLimit:
		limit = MaxLimit
	}
	hx := newHasher(s.indexKey(q.Tenant))
	terms := hx.terms(q.Text)
	if len(terms) == 0 {
		return []Result{}, nil
	}
	scope, sq := "", &s.tenantSearch
	if q.Subject != "" {
		st := hx.scope(q.Subject)
		scope, sq = "scope : "+st+" AND ", &s.partSearch[partOf(st)]
	}

	// One read transaction: the plan, the rows and the keys see one snapshot.
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("memory: search: %w", err)
	}
	defer tx.Rollback()
	selective, err := s.selective(ctx, tx, sq, scope, terms)
	if err != nil {
		return nil, err
	}

	var hits []hit
	if len(selective) > 0 {
		hits, err = s.hits(ctx, tx, sq.best, q, scope+"tokens : ("+strings.Join(selective, " OR ")+")", limit)
	} else {
		// Every word is common: BM25 gives such words almost no weight, and ranking
		// every memory holding them would cost a scan of most of the tenant. Take
		// the newest memories holding all the words (or, failing that, any), ranked.
		hits, err = s.hits(ctx, tx, sq.newest, q, scope+"tokens : ("+strings.Join(terms, " AND ")+")", limit)
		if err == nil && len(hits) == 0 && len(terms) > 1 {
			hits, err = s.hits(ctx, tx, sq.newest, q, scope+"tokens : ("+strings.Join(terms, " OR ")+")", limit)
		}
		slices.SortStableFunc(hits, func(a, b hit) int { return cmp.Compare(b.Score, a.Score) })
	}
	if err != nil {
		return nil, err
	}

	aeads := make(map[string]cipher.AEAD)
	out := make([]Result, 0, len(hits))
	for _, h := range hits {
		if h.Classification > q.Clearance || !h.Classification.Valid() || (q.Subject != "" && h.Subject != q.Subject) { // belt and braces
			continue
		}
		if q.Hide != nil && q.Hide(h.Subject) {
			continue
		}
		aead, ok := aeads[h.Subject]
		if !ok {
			var wrapped []byte
			err := tx.QueryRowContext(ctx, "SELECT wrapped FROM keys WHERE tenant = ? AND subject = ?", q.Tenant, h.Subject).Scan(&wrapped)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return nil, fmt.Errorf("memory: search: %w", err)
			}
			if err == nil {
				k, err := s.unwrapDataKey(q.Tenant, h.Subject, wrapped)
				if err != nil {
					return nil, err
				}
				aead = k.aead
			}
			aeads[h.Subject] = aead
		}
		if aead == nil {
			continue // the subject's key is gone: it was forgotten
		}
		text, err := open(aead, h.sealed, frame(contentDomain, q.Tenant, h.Subject, h.ID))
		if err != nil {
			return nil, fmt.Errorf("memory: search: memory %s does not decrypt: %w", h.ID, err)
		}
		h.Text = string(text)
		out = append(out, h.Result)
	}
	return out, nil
}

type hit struct {
	Result
	sealed []byte
}

// Planning constants: a word found in probeCap or more memories (of the subject, if
// the query names one) counts as common; the rare words searched together may match at
// most about matchBudget memories, which bounds the cost of ranking them.
const (
	probeCap    = 1000
	matchBudget = 4000
)

// selective returns the query's rarer tokens, rarest first, whose matches together
// stay within matchBudget (always at least the rarest, if it is not common). Common
// words carry little weight in BM25, so leaving them out barely changes the order of
// the results while keeping the cost of a search bounded.
func (s *Store) selective(ctx context.Context, tx *sql.Tx, sq *searchStatements, scope string, terms []string) ([]string, error) {
	type df struct {
		t string
		n int
	}
	var dfs []df
	count := tx.StmtContext(ctx, sq.count)
	for _, t := range terms {
		var n int
		err := count.QueryRowContext(ctx, scope+"tokens : "+t, probeCap).Scan(&n)
		if err != nil {
			return nil, fmt.Errorf("memory: search: %w", err)
		}
		if n < probeCap {
			dfs = append(dfs, df{t, n})
		}
	}
	slices.SortStableFunc(dfs, func(a, b df) int { return cmp.Compare(a.n, b.n) })
	var out []string
	sum := 0
	for _, d := range dfs {
		if d.n == 0 {
			continue
		}
		if len(out) > 0 && sum+d.n > matchBudget {
			break
		}
		out, sum = append(out, d.t), sum+d.n
	}
	if len(out) == 0 && len(dfs) > 0 {
		out = []string{dfs[0].t} // every rare word is absent: nothing will match, cheaply
	}
	return out, nil
}

func (s *Store) hits(ctx context.Context, tx *sql.Tx, query *sql.Stmt, q Query, match string, limit int) ([]hit, error) {
	args := []any{match, q.Tenant, int(q.Clearance), limit}
	rows, err := tx.StmtContext(ctx, query).QueryContext(ctx, args...)
	if err != nil {
		return nil, fmt.Errorf("memory: search: %w", err)
	}
	defer rows.Close()
	var hits []hit
	for rows.Next() {
		var h hit
		var class int
		var created int64
		var rid int64 // only for the statement's order
		if err := rows.Scan(&h.ID, &h.Subject, &class, &h.Source, &created, &h.sealed, &h.Score, &rid); err != nil {
			return nil, fmt.Errorf("memory: search: %w", err)
		}
		h.Tenant, h.Classification, h.Created = q.Tenant, policy.Level(class), time.Unix(0, created).UTC()
		h.Score = -h.Score // bm25() is lower-is-better
		hits = append(hits, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("memory: search: %w", err)
	}
	return hits, nil
}

// searchStatements are the statements of a search over some of the index's parts:
// count (?1 a match, ?2 a cap) counts the matches in the parts, one part after another,
// and stops at the cap; best and newest (?1 a match, ?2 the tenant, ?3 the clearance,
// ?4 the limit) return the best-ranked or the newest matches of all the parts together
// (the last column, a memory's row id, orders the newest). They are prepared once, at
// Open, on the read connections: parsing a search of eight parts took a quarter of the
// time of running it.
//
// Each part ranks its matches by its own BM25, whose weight for a word follows how
// many of the part's memories hold it. A subject's search reads one part; a tenant's
// reads all eight, whose memories are spread over them by a keyed hash of their
// subjects, so each part holds a like share of the tenant and a word's weight differs
// between parts only as its occurrences happen to fall among them.
type searchStatements struct {
	count, best, newest *sql.Stmt
}

// prepareSearch prepares the search statements of the tenant and of each part.
func (s *Store) prepareSearch(ctx context.Context) error {
	all := make([]int, indexParts)
	for k := range indexParts {
		all[k] = k
		if err := s.prepareSearchOf(ctx, &s.partSearch[k], []int{k}); err != nil {
			return err
		}
	}
	return s.prepareSearchOf(ctx, &s.tenantSearch, all)
}

func (s *Store) prepareSearchOf(ctx context.Context, st *searchStatements, parts []int) error {
	var count, best, newest []string
	for _, k := range parts {
		t := partTable(k)
		// Tokens are keyed by the tenant, so another tenant's index entries cannot
		// match; the tenant and clearance filters hold regardless.
		cols := `SELECT m.id, m.subject, m.class, m.source, m.created, m.sealed, bm25(` + t + `, 0.0, 1.0), m.rid
		FROM ` + t + ` JOIN memories m ON m.rid = ` + t + `.rowid
		WHERE ` + t + ` MATCH ?1 AND m.tenant = ?2 AND m.class <= ?3`
		count = append(count, "SELECT 1 FROM "+t+" WHERE "+t+" MATCH ?1")
		best = append(best, "SELECT * FROM ("+cols+" ORDER BY 7 LIMIT ?4)")
		newest = append(newest, "SELECT * FROM ("+cols+" ORDER BY "+t+".rowid DESC LIMIT ?4)")
	}
	for _, p := range []struct {
		st **sql.Stmt
		q  string
	}{
		{&st.count, "SELECT count(*) FROM (" + strings.Join(count, " UNION ALL ") + " LIMIT ?2)"},
		{&st.best, strings.Join(best, " UNION ALL ") + " ORDER BY 7 LIMIT ?4"},
		{&st.newest, strings.Join(newest, " UNION ALL ") + " ORDER BY 8 DESC LIMIT ?4"},
	} {
		var err error
		if *p.st, err = s.r.PrepareContext(ctx, p.q); err != nil {
			return fmt.Errorf("memory: prepare search: %w", err)
		}
	}
	return nil
}

// closeSearch closes the search statements that were prepared.
func (s *Store) closeSearch() {
	for _, st := range append(s.partSearch[:], s.tenantSearch) {
		for _, stmt := range []*sql.Stmt{st.count, st.best, st.newest} {
			if stmt != nil {
				stmt.Close()
			}
		}
	}
}
