package consent

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sios-project/sios/internal/files"
	"github.com/sios-project/sios/oar"
)

// Dir is the grant store's directory inside a data directory. It holds one file per
// grant, named by the grant's id and ".json" (a consent-state/1 document), and LOCK.
const Dir = "consent"

const lockName = "LOCK"

// Store is the origin's record of the grants it signed and what became of them. Every
// change (Add, Revoke, Use) reads the grant's file, decides and writes it back
// atomically (temporary file, fsync, rename, fsync of the directory) under an exclusive
// lock on DIR/consent/LOCK, so changes are safe across goroutines and processes, and a
// change has reached the disk before the call returns: a use survives a crash before
// the data it allowed is released. Reads (Get, List, Find) use a copy of the files held
// in memory, reloaded when the directory changes. It is safe for concurrent use.
type Store struct {
	dir  string
	self Signer // this node: every grant held must be its own

	mu      sync.Mutex
	entries map[string]*Entry // guarded by mu; by grant id
	mtime   time.Time         // guarded by mu; the directory's when entries were read
}

// OpenStore opens (creating it if need be) the grant store in dataDir/consent. self is
// this node's keys and institution: the store holds only grants this node signed, and
// checks every file's signature as it loads it. A file that does not parse or verify
// stops the open with an error naming it.
func OpenStore(dataDir string, self Signer) (*Store, error) {
	dir := filepath.Join(dataDir, Dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	s := &Store{dir: dir, self: self}
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Temporary files of writes a crash interrupted: the lock says none is in progress.
	names, err := readNames(dir)
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if strings.HasPrefix(n, ".") && strings.Contains(n, ".tmp") {
			os.Remove(filepath.Join(dir, n))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loadLocked(); err != nil {
		return nil, err
	}
	return s, nil
}

// Add records a grant this node has just signed (Sign), with no uses made. It refuses a
// grant that does not parse, that this node did not sign, that has expired at now, that
// the store already holds, or beyond MaxStoredGrants.
func (s *Store) Add(grant []byte, now time.Time) (*Entry, error) {
	g, err := Parse(grant)
	if err != nil {
		return nil, err
	}
	if err := verifySig(g, s.self); err != nil {
		return nil, err
	}
	if !now.Before(g.expires) {
		return nil, errorf(CodeExpired, "grant %s expired at %s (now %s)", g.ID, g.Expires, oar.FormatTime(now))
	}
	e := &Entry{Grant: g, Raw: append([]byte(nil), grant...)}
	b, err := EncodeState(e)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	current := s.currentLocked()
	names, err := readNames(s.dir)
	if err != nil {
		return nil, err
	}
	n := 0
	for _, name := range names {
		if _, ok := grantFileID(name); ok {
			n++
		}
	}
	if n >= MaxStoredGrants {
		return nil, fmt.Errorf("consent store %s holds %d grants, the limit (MaxStoredGrants)", s.dir, n)
	}
	path := s.path(g.ID)
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		if err == nil {
			return nil, fmt.Errorf("consent store already holds a grant with id %s", g.ID)
		}
		return nil, err
	}
	if err := files.Replace(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("consent store: write grant %s: %w", g.ID, err)
	}
	s.wroteLocked(e, current)
	return e.copy(), nil
}

// Get returns the grant id as the store holds it. An id the store does not hold is an
// *Error with CodeUnknown.
func (s *Store) Get(id string) (*Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refreshLocked(); err != nil {
		return nil, err
	}
	e, ok := s.entries[id]
	if !ok {
		return nil, errorf(CodeUnknown, "this node holds no grant %s", short(id))
	}
	return e.copy(), nil
}

// List returns every grant the store holds, oldest first (by issued, then id). Entry.State
// says where each stands.
func (s *Store) List() ([]*Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refreshLocked(); err != nil {
		return nil, err
	}
	out := make([]*Entry, 0, len(s.entries))
	for _, e := range s.entries {
		out = append(out, e.copy())
	}
	slices.SortFunc(out, func(a, b *Entry) int {
		return cmp.Or(a.Grant.issued.Compare(b.Grant.issued), strings.Compare(a.Grant.ID, b.Grant.ID))
	})
	return out, nil
}

// Revoke revokes grant id at now, at once: every later Use refuses it with
// CodeRevoked. Revoking a revoked grant changes nothing (the first revocation time
// stands). An id the store does not hold is an *Error with CodeUnknown.
func (s *Store) Revoke(id string, now time.Time) (*Entry, error) {
	return s.update(id, func(e *Entry) (bool, error) {
		if !e.Revoked.IsZero() {
			return false, nil
		}
		e.Revoked = now
		return true, nil
	})
}

// Use consumes one use of grant id at now and returns the grant as stored, with the
// count after this use. It refuses, as an *Error, a grant the store does not hold
// (CodeUnknown), a revoked one (CodeRevoked), an expired one (CodeExpired) and one whose
// uses are all made (CodeUsedUp); a refused use consumes nothing. The use is on disk
// before Use returns. Use decides only the grant's state: check first that the grant
// covers the request (Grant.Check, or Verify), so that a request it does not cover
// uses nothing up, and release under the returned entry's Grant, the one this node
// signed and recorded.
func (s *Store) Use(id string, now time.Time) (*Entry, error) {
	return s.update(id, func(e *Entry) (bool, error) {
		if err := e.usable(now); err != nil {
			return false, err
		}
		if e.Used >= MaxUseCount {
			return false, fmt.Errorf("consent: grant %s has been used %d times (MaxUseCount)", e.Grant.ID, e.Used)
		}
		e.Used++
		return true, nil
	})
}

// Find returns the grant, of those principal made in u.Tenant, that covers u and may be
// used at u.Time: of several, the one that expires first. When none does, the *Error
// has CodeRequired and says what is missing, from the grant that came closest.
func (s *Store) Find(principal string, u Use) (*Entry, error) {
	if err := u.check(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refreshLocked(); err != nil {
		return nil, err
	}
	var best *Entry
	var closest *Error
	closestRank := -1
	for _, e := range s.entries {
		g := e.Grant
		if g.Grantor.Principal != principal || g.Grantor.Tenant != u.Tenant {
			continue
		}
		err := g.Check(u)
		if err == nil {
			err = e.usable(u.Time)
		}
		if err == nil {
			if best == nil || g.expires.Before(best.Grant.expires) || g.expires.Equal(best.Grant.expires) && g.ID < best.Grant.ID {
				best = e
			}
			continue
		}
		var ce *Error
		if !errors.As(err, &ce) {
			return nil, err
		}
		if r := closeness(ce.Code); r > closestRank || r == closestRank && ce.Message < closest.Message {
			closest, closestRank = ce, r
		}
	}
	if best != nil {
		return best.copy(), nil
	}
	what := fmt.Sprintf("%s data to %s", u.Classification, u.Institution)
	switch u.Action {
	case ActionInvoke:
		what = fmt.Sprintf("sending %s data to brain %s at institution %s", u.Classification, u.Brain, u.Institution)
	case ActionMemoryRead:
		what = fmt.Sprintf("releasing %s memories about %d subject(s) to institution %s", u.Classification, len(u.Subjects), u.Institution)
	}
	if closest == nil {
		return nil, errorf(CodeRequired, "principal %s (tenant %s) has made no grant: %s needs one", principal, u.Tenant, what)
	}
	return nil, errorf(CodeRequired, "no grant of principal %s (tenant %s) covers %s; the closest does not: %s", principal, u.Tenant, what, closest.Message)
}

// closeness orders refusals by how much of a request the grant did cover, so that the
// refusal reported is the one that says what is really missing.
func closeness(c Code) int {
	switch c {
	case CodeWrongAudience:
		return 1
	case CodeOutOfScope:
		return 2
	case CodeAboveMax:
		return 3
	case CodeExpired, CodeRevoked, CodeUsedUp:
		return 4
	}
	return 0
}

// update reads grant id's file under the lock, lets f change the entry, and writes it
// back if f says it changed.
func (s *Store) update(id string, f func(*Entry) (bool, error)) (*Entry, error) {
	if !isHexID(id) {
		return nil, errorf(CodeUnknown, "%q is not a grant id (32 lowercase hex digits)", short(id))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	current := s.currentLocked()
	e, err := s.readLocked(id)
	if err != nil {
		return nil, err
	}
	changed, err := f(e)
	if err != nil {
		s.entries[id] = e
		return nil, err
	}
	if changed {
		b, err := EncodeState(e)
		if err != nil {
			return nil, err
		}
		if err := files.Replace(s.path(id), b, 0o600); err != nil {
			return nil, fmt.Errorf("consent store: write grant %s: %w", id, err)
		}
	}
	s.wroteLocked(e, current)
	return e.copy(), nil
}

// readLocked reads and checks grant id's file.
func (s *Store) readLocked(id string) (*Entry, error) {
	path := s.path(id)
	b, err := readLimited(path, MaxStateSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errorf(CodeUnknown, "this node holds no grant %s", id)
	}
	if err != nil {
		return nil, err
	}
	e, err := ParseState(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if e.Grant.ID != id {
		return nil, fmt.Errorf("%s holds grant %s", path, e.Grant.ID)
	}
	if err := verifySig(e.Grant, s.self); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return e, nil
}

// currentLocked reports whether the entries in memory reflect the directory now.
func (s *Store) currentLocked() bool {
	st, err := os.Stat(s.dir)
	return err == nil && st.ModTime().Equal(s.mtime)
}

// wroteLocked installs e, just read or written under the lock. If the entries in
// memory were current before, they are current now (nobody else can have written
// under the lock), so the directory's new time is taken as read.
func (s *Store) wroteLocked(e *Entry, current bool) {
	s.entries[e.Grant.ID] = e
	if st, err := os.Stat(s.dir); err == nil && current {
		s.mtime = st.ModTime()
	}
}

// refreshLocked reloads the entries if the directory changed since they were read.
func (s *Store) refreshLocked() error {
	if s.currentLocked() {
		return nil
	}
	return s.loadLocked()
}

// loadLocked reads every grant file. The directory's time is taken first, so that a
// change made while reading makes the next refresh read again.
func (s *Store) loadLocked() error {
	st, err := os.Stat(s.dir)
	if err != nil {
		return err
	}
	names, err := readNames(s.dir)
	if err != nil {
		return err
	}
	entries := make(map[string]*Entry)
	for _, name := range names {
		id, ok := grantFileID(name)
		if !ok {
			continue
		}
		if len(entries) >= MaxStoredGrants {
			return fmt.Errorf("consent store %s holds more than %d grants (MaxStoredGrants)", s.dir, MaxStoredGrants)
		}
		path := filepath.Join(s.dir, name)
		b, err := readLimited(path, MaxStateSize)
		if errors.Is(err, fs.ErrNotExist) {
			continue // replaced meanwhile by a rename: the next refresh sees it
		}
		if err != nil {
			return err
		}
		// A file whose grant is unchanged need not be verified again.
		if old, ok := s.entries[id]; ok {
			if e, err := ParseState(b); err == nil && string(e.Raw) == string(old.Raw) {
				entries[id] = e
				continue
			}
		}
		e, err := ParseState(b)
		if err != nil {
			return fmt.Errorf("%s: %v", path, err)
		}
		if e.Grant.ID != id {
			return fmt.Errorf("%s holds grant %s", path, e.Grant.ID)
		}
		if err := verifySig(e.Grant, s.self); err != nil {
			return fmt.Errorf("%s: %v", path, err)
		}
		entries[id] = e
	}
	s.entries, s.mtime = entries, st.ModTime()
	return nil
}

func (s *Store) path(id string) string { return filepath.Join(s.dir, id+".json") }

// lock takes the store's exclusive lock, waiting for another process to release it.
// The kernel drops it if the process dies, so a crash leaves no stale lock.
func (s *Store) lock() (unlock func(), err error) {
	p := filepath.Join(s.dir, lockName)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	return func() { f.Close() }, nil // closing the file releases the lock
}

func (e *Entry) copy() *Entry {
	c := *e
	return &c
}

// grantFileID reports whether name is a grant file's name, and its grant id.
func grantFileID(name string) (string, bool) {
	id, ok := strings.CutSuffix(name, ".json")
	return id, ok && isHexID(id)
}

func readNames(dir string) ([]string, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Readdirnames(-1)
}

// readLimited reads a regular file of at most limit bytes.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is more than %d bytes (MaxStateSize)", path, limit)
	}
	return b, nil
}
