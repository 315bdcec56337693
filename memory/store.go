package memory

import (
	"context"
	"crypto/cipher"
	"crypto/hmac"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// ErrUnknownSubject is returned by Forget and Export for a subject that holds no memories.
var ErrUnknownSubject = errors.New("memory: unknown subject")

// ErrPurgeIncomplete is returned (wrapped, together with the result) when memories were
// forgotten — rows and data key deleted in a committed transaction — but the physical
// purge that scrubs the files could not finish, typically because another connection
// held a long read. The purge is retried by the next Forget, Expire or Open.
var ErrPurgeIncomplete = errors.New("memory: purge incomplete")

// Options configures a Store.
type Options struct {
	// Now returns the current time; time.Now if nil. It stamps memories' creation time.
	Now func() time.Time
}

// Store is a tenant-partitioned, encrypted memory store. It is safe for concurrent use,
// and other processes may open the same store: SQLite's locking keeps the file consistent.
type Store struct {
	dir     string   // <dataDir>/memory
	db      *os.File // the database file, for scrub; open until Close (see scrub)
	w       *sql.DB  // one connection: every write transaction, the purge
	r       *sql.DB  // reads; WAL lets them run beside the writer
	kek     []byte
	kekAEAD cipher.AEAD
	now     func() time.Time

	// The search's statements, prepared on r (see searchStatements).
	tenantSearch searchStatements
	partSearch   [indexParts]searchStatements

	// hook, when set (tests only), is called at named points of Forget and the purge
	// so a crash test can kill the process there.
	hook func(point string)
}

const schema = `
CREATE TABLE IF NOT EXISTS meta(
	k TEXT PRIMARY KEY,
	v BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS keys(
	tenant  TEXT NOT NULL,
	subject TEXT NOT NULL,
	wrapped BLOB NOT NULL,
	PRIMARY KEY(tenant, subject)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS memories(
	rid     INTEGER PRIMARY KEY,
	id      TEXT NOT NULL UNIQUE,
	tenant  TEXT NOT NULL,
	subject TEXT NOT NULL,
	class   INTEGER NOT NULL,
	source  TEXT NOT NULL,
	created INTEGER NOT NULL,
	sealed  BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS memories_subject ON memories(tenant, subject, created);
CREATE INDEX IF NOT EXISTS memories_created ON memories(created);
`

// dsn gives every connection the same settings: SQLite's secure_delete is a
// per-connection setting, so it must be in the DSN, not run once. The path is
// percent-encoded: SQLite reads the name as a URI, where a '#' or '?' ends the path
// and '%' starts an escape, so a data directory holding one of them would otherwise
// open another database, silently — an empty store beside the real one. path must
// be absolute.
func dsn(path, txlock string) string {
	return (&url.URL{Scheme: "file", Path: path}).String() +
		"?_pragma=busy_timeout(10000)" +
		"&_pragma=secure_delete(ON)" +
		"&_pragma=journal_mode(WAL)" +
		"&_pragma=synchronous(FULL)" +
		"&_pragma=temp_store(MEMORY)" +
		"&_pragma=cache_size(-16000)" +
		"&_pragma=mmap_size(1073741824)" +
		"&_txlock=" + txlock
}

// Open opens (creating if needed) the memory store of the node whose data directory
// is dataDir: the database <dataDir>/memory/memory.db and the key-encryption key
// <dataDir>/memory.kek. A forget interrupted by a crash is completed here.
func Open(dataDir string, opts Options) (*Store, error) {
	s := &Store{dir: filepath.Join(dataDir, "memory"), now: opts.Now}
	if s.now == nil {
		s.now = time.Now
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, fmt.Errorf("memory: %w", err)
	}
	if err := os.Chmod(s.dir, 0o700); err != nil {
		return nil, fmt.Errorf("memory: %w", err)
	}
	path := filepath.Join(s.dir, "memory.db")
	// SQLite creates -wal and -shm with the database file's mode, so creating it
	// 0600 here makes all three private. The descriptor stays open until Close, after
	// SQLite's: closing it earlier would drop their locks (see scrub).
	var err error
	if s.db, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return nil, fmt.Errorf("memory: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("memory: %w", err)
	}

	// An absolute path: in a URI, a relative one's first element would read as a host.
	abs, err := filepath.Abs(path)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("memory: %w", err)
	}
	if s.w, err = sql.Open("sqlite", dsn(abs, "immediate")); err != nil {
		s.Close()
		return nil, fmt.Errorf("memory: %w", err)
	}
	s.w.SetMaxOpenConns(1)
	if s.r, err = sql.Open("sqlite", dsn(abs, "deferred")); err != nil {
		s.Close()
		return nil, fmt.Errorf("memory: %w", err)
	}
	s.r.SetMaxOpenConns(max(4, runtime.GOMAXPROCS(0)))
	s.r.SetMaxIdleConns(max(4, runtime.GOMAXPROCS(0)))
	if err := s.init(dataDir, path); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) init(dataDir, path string) error {
	ctx := context.Background()
	var on int
	if err := s.w.QueryRowContext(ctx, "PRAGMA secure_delete").Scan(&on); err != nil {
		return fmt.Errorf("memory: open %s: %w", path, err)
	}
	if on != 1 {
		return fmt.Errorf("memory: open %s: secure_delete is not on", path)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("memory: open %s: %w", path, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, schema); err != nil {
		return fmt.Errorf("memory: create schema in %s: %w", path, err)
	}
	var check []byte
	err = tx.QueryRowContext(ctx, "SELECT v FROM meta WHERE k = 'kek_check'").Scan(&check)
	fresh := errors.Is(err, sql.ErrNoRows)
	if err != nil && !fresh {
		return fmt.Errorf("memory: read %s: %w", path, err)
	}
	kekPath := filepath.Join(dataDir, kekFile)
	if s.kek, err = loadKEK(kekPath, fresh); err != nil {
		return err
	}
	if fresh {
		if _, err := tx.ExecContext(ctx, "INSERT INTO meta(k, v) VALUES('kek_check', ?)", kekCheck(s.kek)); err != nil {
			return fmt.Errorf("memory: write %s: %w", path, err)
		}
	} else if !hmac.Equal(check, kekCheck(s.kek)) {
		return fmt.Errorf("memory: key file %s is not the key the memories in %s were sealed under; restore the right key file", kekPath, path)
	}
	s.kekAEAD = newGCM(s.kek)
	if err := s.ensureIndexTx(ctx, tx); err != nil {
		return fmt.Errorf("memory: open %s: %w", path, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("memory: open %s: %w", path, err)
	}
	// A purge left pending by a crash is finished (purge does nothing when none is).
	if err := s.purge(ctx); err != nil {
		return fmt.Errorf("memory: finishing an interrupted forget in %s: %w", path, err)
	}
	return s.prepareSearch(ctx)
}

// Close closes the database. The key stays in the key file.
func (s *Store) Close() error {
	var errs []error
	s.closeSearch()
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	if s.db != nil {
		errs = append(errs, s.db.Close())
	}
	clear(s.kek)
	return errors.Join(errs...)
}

func (s *Store) at(point string) {
	if s.hook != nil {
		s.hook(point)
	}
}
