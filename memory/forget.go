package memory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/sios-project/sios/policy"
)

// Forgotten names memories that were destroyed, for the caller's audit record.
type Forgotten struct {
	Tenant  string   `json:"tenant"`
	Subject string   `json:"subject"`
	IDs     []string `json:"ids"` // oldest first
	// KeyDestroyed says that no memory of the subject is left and its data key is gone.
	KeyDestroyed bool `json:"key_destroyed"`
}

// Forget destroys every memory of the subject: in one transaction it deletes their rows,
// their full-text index entries and the subject's data key, and marks a purge pending;
// then the purge scrubs the files (see the package comment). A crash at any point leaves
// the subject either untouched or, after the next Open, completely forgotten.
//
// If the rows are gone but the purge could not finish, Forget returns the result and an
// error wrapping ErrPurgeIncomplete.
func (s *Store) Forget(ctx context.Context, tenant, subject string) (*Forgotten, error) {
	return s.ForgetRecorded(ctx, tenant, subject, policy.TopSecret, nil)
}

// ForgetRecorded forgets, like Forget, the subject's memories classified at or below
// upTo; the data key goes only when no memory of the subject is left above it. record,
// if not nil, is called inside the transaction before it commits, with what will be
// forgotten and the subject's Ref (made while its key still exists): nothing is
// forgotten unless record succeeds. A subject with no memory at or below upTo is
// ErrUnknownSubject, whatever it holds above, so that a caller learns nothing of
// memories it may not see.
func (s *Store) ForgetRecorded(ctx context.Context, tenant, subject string, upTo policy.Level, record func(*Forgotten, Ref) error) (*Forgotten, error) {
	if err := checkName("tenant", tenant, true); err != nil {
		return nil, err
	}
	if err := checkName("subject", subject, true); err != nil {
		return nil, err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("memory: forget: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, "SELECT rid, id, class FROM memories WHERE tenant = ? AND subject = ? ORDER BY created, rid", tenant, subject)
	if err != nil {
		return nil, fmt.Errorf("memory: forget: %w", err)
	}
	f := &Forgotten{Tenant: tenant, Subject: subject}
	var rids []int64
	kept := 0
	for rows.Next() {
		var rid int64
		var id string
		var class int
		if err := rows.Scan(&rid, &id, &class); err != nil {
			rows.Close()
			return nil, fmt.Errorf("memory: forget: %w", err)
		}
		if policy.Level(class) > upTo {
			kept++
			continue
		}
		rids, f.IDs = append(rids, rid), append(f.IDs, id)
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("memory: forget: %w", err)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("memory: forget: %w", err)
	}
	if len(rids) == 0 {
		return nil, fmt.Errorf("%w: tenant %q has no memories of subject %q", ErrUnknownSubject, tenant, subject)
	}
	ref, err := s.refTx(ctx, tx, tenant, subject)
	if err != nil {
		return nil, err
	}
	parts, err := s.deleteTx(ctx, tx, rids)
	if err != nil {
		return nil, err
	}
	if kept == 0 {
		if _, err := tx.ExecContext(ctx, "DELETE FROM keys WHERE tenant = ? AND subject = ?", tenant, subject); err != nil {
			return nil, fmt.Errorf("memory: forget: destroy data key: %w", err)
		}
		f.KeyDestroyed = true
	}
	if err := markPurgeTx(ctx, tx, parts); err != nil {
		return nil, err
	}
	if record != nil {
		if err := record(f, ref); err != nil {
			return nil, err
		}
	}
	s.at("forget-before-commit")
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("memory: forget: %w", err)
	}
	s.at("forget-committed")
	if err := s.purge(ctx); err != nil {
		return f, fmt.Errorf("%w: %v", ErrPurgeIncomplete, err)
	}
	return f, nil
}

// deleteTx deletes memories by row id, with their index entries, and returns the
// index parts it wrote to (bit k: part k). Each memory's entry is made again from its
// decrypted text (its subject's data key must still be in the store) and named in a
// 'delete', which writes delete markers that the purge's merge drops together with the
// entries. If an entry cannot be made again — a text that does not decrypt, or an index
// built another way — the index is rebuilt without the deleted memories instead, which
// takes longer but leaves nothing behind either.
func (s *Store) deleteTx(ctx context.Context, tx *sql.Tx, rids []int64) (parts uint64, err error) {
	current, err := indexCurrentTx(ctx, tx)
	if err != nil {
		return 0, err
	}
	parts, rebuild, err := s.deleteRowsTx(ctx, tx, rids, !current)
	if err != nil {
		return 0, err
	}
	if rebuild {
		return allParts, s.rebuildIndexTx(ctx, tx)
	}
	return parts, nil
}

// deleteRowsTx deletes the memories and, unless skipIndex, writes the 'delete' of each
// one's index entry, reporting the parts it wrote to. It reports whether the index must
// be rebuilt instead: skipIndex, or an entry that could not be made again.
func (s *Store) deleteRowsTx(ctx context.Context, tx *sql.Tx, rids []int64, skipIndex bool) (parts uint64, rebuild bool, err error) {
	get, err := tx.PrepareContext(ctx, "SELECT id, tenant, subject, sealed FROM memories WHERE rid = ?")
	if err != nil {
		return 0, false, fmt.Errorf("memory: delete: %w", err)
	}
	defer get.Close()
	delFTS := prepareEntries(tx, &deleteEntry)
	defer delFTS.Close()
	delMem, err := tx.PrepareContext(ctx, "DELETE FROM memories WHERE rid = ?")
	if err != nil {
		return 0, false, fmt.Errorf("memory: delete: %w", err)
	}
	defer delMem.Close()
	em := newEntryMaker(s)
	rebuild = skipIndex
	for _, rid := range rids {
		if !rebuild {
			var id, tenant, subject string
			var sealed []byte
			if err := get.QueryRowContext(ctx, rid).Scan(&id, &tenant, &subject, &sealed); err != nil {
				return 0, false, fmt.Errorf("memory: delete: %w", err)
			}
			scope, doc, ok, err := em.entry(ctx, tx, tenant, subject, id, sealed)
			if err != nil {
				return 0, false, err
			}
			if !ok {
				rebuild = true
			} else if err := delFTS.exec(ctx, rid, scope, doc); err != nil {
				return 0, false, fmt.Errorf("memory: delete index entry: %w", err)
			} else {
				parts |= 1 << partOf(scope)
			}
		}
		if _, err := delMem.ExecContext(ctx, rid); err != nil {
			return 0, false, fmt.Errorf("memory: delete: %w", err)
		}
	}
	return parts, rebuild, nil
}

// markPurgeTx records in tx that the index parts in parts (bit k: part k) must be
// merged and the files scrubbed, adding them to any purge already pending.
func markPurgeTx(ctx context.Context, tx *sql.Tx, parts uint64) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO meta(k, v) VALUES('purge_pending', ?1)
		ON CONFLICT(k) DO UPDATE SET v = CAST(v AS INTEGER) | ?1`, int64(parts)); err != nil {
		return fmt.Errorf("memory: mark purge: %w", err)
	}
	return nil
}

// purgePending returns the index parts a pending purge must merge (bit k: part k), or
// 0 if no purge is pending. A marker that names no part this build has (one written
// by another build) names them all.
func (s *Store) purgePending(ctx context.Context) (uint64, error) {
	var parts int64
	err := s.w.QueryRowContext(ctx, "SELECT CAST(v AS INTEGER) FROM meta WHERE k = 'purge_pending'").Scan(&parts)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("memory: read purge marker: %w", err)
	}
	if p := uint64(parts) & allParts; p != 0 {
		return p, nil
	}
	return allParts, nil
}

// purge scrubs deleted content from the files after a committed delete:
//
//  1. FTS5 'optimize' merges each index part the marker names into one segment,
//     dropping the deleted entries with their delete markers, so no segment of the
//     part written before the delete survives; the old segments' pages are freed and,
//     with secure_delete, zeroed. Parts no delete wrote to are left as they are: they
//     never held the deleted entries.
//  2. wal_checkpoint(TRUNCATE) copies the newest page versions into the database and
//     truncates the WAL, which held earlier versions of the same pages.
//  3. scrub zeroes what secure_delete misses: copies of cells that a rebalanced
//     b-tree page kept in its unused space after the cells moved away; the pages it
//     rewrote are checkpointed in turn.
//  4. The marker is cleared, and the WAL checkpointed and truncated again.
//
// Each step is idempotent, so a purge interrupted by a crash is simply run again.
func (s *Store) purge(ctx context.Context) error {
	parts, err := s.purgePending(ctx)
	if err != nil || parts == 0 {
		return err
	}
	for k := range indexParts {
		if parts&(1<<k) == 0 {
			continue
		}
		t := partTable(k)
		if _, err := s.w.ExecContext(ctx, "INSERT INTO "+t+"("+t+") VALUES('optimize')"); err != nil {
			return fmt.Errorf("optimize index part %d: %w", k, err)
		}
	}
	s.at("purge-optimized")
	if err := s.checkpoint(ctx); err != nil {
		return err
	}
	s.at("purge-checkpointed")
	n, err := s.scrub(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		if err := s.checkpoint(ctx); err != nil {
			return err
		}
	}
	s.at("purge-scrubbed")
	if _, err := s.w.ExecContext(ctx, "DELETE FROM meta WHERE k = 'purge_pending'"); err != nil {
		return fmt.Errorf("clear purge marker: %w", err)
	}
	return s.checkpoint(ctx)
}

// checkpoint runs wal_checkpoint(TRUNCATE) until it completes. It waits (busy_timeout)
// for readers of older snapshots to finish; a reader that never finishes makes it fail.
func (s *Store) checkpoint(ctx context.Context) error {
	var busy, logFrames, done int
	for attempt := 0; attempt < 3; attempt++ {
		err := s.w.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logFrames, &done)
		if err == nil && busy == 0 {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("checkpoint: WAL still in use by another reader (%d of %d frames copied)", done, logFrames)
}

// Retention sets how long memories are kept. A memory expires when it is older than the
// shortest period that applies to it: its tenant's, its classification's. A memory to
// which no period applies is kept.
type Retention struct {
	PerTenant         map[string]time.Duration
	PerClassification map[policy.Level]time.Duration
}

// Expire forgets, by the same path as Forget, every memory older than its retention
// period at now, and reports what it destroyed per subject. A subject whose last memory
// expires loses its data key too.
func (s *Store) Expire(ctx context.Context, now time.Time, r Retention) ([]Forgotten, error) {
	return s.ExpireRecorded(ctx, now, r, nil)
}

// ExpireRecorded expires like Expire, calling record (if not nil) for each subject
// inside the transaction before it commits: nothing expires unless every record
// succeeds.
func (s *Store) ExpireRecorded(ctx context.Context, now time.Time, r Retention, record func(*Forgotten, Ref) error) ([]Forgotten, error) {
	minPeriod := time.Duration(0)
	for t, d := range r.PerTenant {
		if d <= 0 {
			return nil, fmt.Errorf("memory: retention period for tenant %q is %v; periods must be positive", t, d)
		}
		if minPeriod == 0 || d < minPeriod {
			minPeriod = d
		}
	}
	for l, d := range r.PerClassification {
		if !l.Valid() {
			return nil, fmt.Errorf("memory: retention names classification %v, which is not one", l)
		}
		if d <= 0 {
			return nil, fmt.Errorf("memory: retention period for %v is %v; periods must be positive", l, d)
		}
		if minPeriod == 0 || d < minPeriod {
			minPeriod = d
		}
	}
	if minPeriod == 0 {
		return nil, nil
	}
	nowNS := now.UnixNano()

	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("memory: expire: %w", err)
	}
	defer tx.Rollback()
	// No memory created at or after now-minPeriod can have expired.
	rows, err := tx.QueryContext(ctx, `SELECT rid, id, tenant, subject, class, created FROM memories
		WHERE created < ? ORDER BY tenant, subject, created, rid`, now.Add(-minPeriod).UnixNano())
	if err != nil {
		return nil, fmt.Errorf("memory: expire: %w", err)
	}
	var out []Forgotten
	var rids []int64
	for rows.Next() {
		var rid, created int64
		var id, tenant, subject string
		var class int
		if err := rows.Scan(&rid, &id, &tenant, &subject, &class, &created); err != nil {
			rows.Close()
			return nil, fmt.Errorf("memory: expire: %w", err)
		}
		period, ok := r.PerTenant[tenant]
		if d, ok2 := r.PerClassification[policy.Level(class)]; ok2 && (!ok || d < period) {
			period, ok = d, true
		}
		if !ok || nowNS-created <= int64(period) {
			continue
		}
		if n := len(out); n == 0 || out[n-1].Tenant != tenant || out[n-1].Subject != subject {
			out = append(out, Forgotten{Tenant: tenant, Subject: subject})
		}
		out[len(out)-1].IDs = append(out[len(out)-1].IDs, id)
		rids = append(rids, rid)
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("memory: expire: %w", err)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("memory: expire: %w", err)
	}
	if len(rids) == 0 {
		return nil, nil
	}
	parts, err := s.deleteTx(ctx, tx, rids)
	if err != nil {
		return nil, err
	}
	// A subject with no memories left loses its data key.
	refs := make([]Ref, len(out))
	for i := range out {
		f := &out[i]
		if refs[i], err = s.refTx(ctx, tx, f.Tenant, f.Subject); err != nil {
			return nil, err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM keys WHERE tenant = ?1 AND subject = ?2
			AND NOT EXISTS (SELECT 1 FROM memories WHERE tenant = ?1 AND subject = ?2)`, f.Tenant, f.Subject)
		if err != nil {
			return nil, fmt.Errorf("memory: expire: %w", err)
		}
		if n, _ := res.RowsAffected(); n > 0 {
			f.KeyDestroyed = true
		}
	}
	if err := markPurgeTx(ctx, tx, parts); err != nil {
		return nil, err
	}
	if record != nil {
		for i := range out {
			if err := record(&out[i], refs[i]); err != nil {
				return nil, err
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("memory: expire: %w", err)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Tenant != out[j].Tenant {
			return out[i].Tenant < out[j].Tenant
		}
		return out[i].Subject < out[j].Subject
	})
	if err := s.purge(ctx); err != nil {
		return out, fmt.Errorf("%w: %v", ErrPurgeIncomplete, err)
	}
	return out, nil
}

// Stats describes the store.
type Stats struct {
	Memories     int   `json:"memories"`
	Subjects     int   `json:"subjects"`
	Tenants      int   `json:"tenants"`
	DBBytes      int64 `json:"db_bytes"` // database file, as SQLite accounts it
	PurgePending bool  `json:"purge_pending"`
}

// Stats counts what the store holds.
func (s *Store) Stats(ctx context.Context) (*Stats, error) {
	var st Stats
	var pages, pageSize int64
	err := s.r.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM memories),
		(SELECT count(*) FROM keys),
		(SELECT count(DISTINCT tenant) FROM keys),
		(SELECT count(*) FROM meta WHERE k = 'purge_pending')`).Scan(&st.Memories, &st.Subjects, &st.Tenants, &st.PurgePending)
	if err != nil {
		return nil, fmt.Errorf("memory: stats: %w", err)
	}
	if err := s.r.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		return nil, fmt.Errorf("memory: stats: %w", err)
	}
	if err := s.r.QueryRowContext(ctx, "PRAGMA page_size").Scan(&pageSize); err != nil {
		return nil, fmt.Errorf("memory: stats: %w", err)
	}
	st.DBBytes = pages * pageSize
	return &st, nil
}

// refTx is the subject's Ref under its audit key, read in tx.
func (s *Store) refTx(ctx context.Context, tx *sql.Tx, tenant, subject string) (Ref, error) {
	var wrapped []byte
	err := tx.QueryRowContext(ctx, "SELECT wrapped FROM keys WHERE tenant = ? AND subject = ?", tenant, subject).Scan(&wrapped)
	if errors.Is(err, sql.ErrNoRows) {
		return Ref{Subject: pseudonym(s.indexKey(tenant), tenant, subject)}, nil
	}
	if err != nil {
		return Ref{}, fmt.Errorf("memory: read data key: %w", err)
	}
	k, err := s.unwrapDataKey(tenant, subject, wrapped)
	if err != nil {
		return Ref{}, err
	}
	return Ref{Subject: pseudonym(k.audit, tenant, subject)}, nil
}
