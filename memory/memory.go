package memory

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/sios-project/sios/policy"
)

// NewMemory is a memory to add.
type NewMemory struct {
	Tenant         string
	Subject        string // the person, case or project the memory is about
	Classification policy.Level
	Source         string // where it came from (free text, may be empty)
	Text           string
}

// Memory is a stored memory with its text decrypted.
type Memory struct {
	ID             string       `json:"id"`
	Tenant         string       `json:"tenant"`
	Subject        string       `json:"subject"`
	Classification policy.Level `json:"classification"`
	Source         string       `json:"source"`
	Created        time.Time    `json:"created"`
	Text           string       `json:"text"`
}

// idEncoding spells memory ids: lowercase base32, no padding.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns "mem_" and 26 base32 characters of 128 random bits.
func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return "mem_" + idEncoding.EncodeToString(b[:])
}

func checkName(what, v string, required bool) error {
	switch {
	case v == "" && required:
		return fmt.Errorf("memory: %s is empty", what)
	case len(v) > MaxNameBytes:
		return fmt.Errorf("memory: %s is %d bytes; the limit is %d (MaxNameBytes)", what, len(v), MaxNameBytes)
	case !utf8.ValidString(v):
		return fmt.Errorf("memory: %s is not valid UTF-8", what)
	}
	return nil
}

func (m *NewMemory) check() error {
	if err := checkName("tenant", m.Tenant, true); err != nil {
		return err
	}
	if err := checkName("subject", m.Subject, true); err != nil {
		return err
	}
	if err := checkName("source", m.Source, false); err != nil {
		return err
	}
	if !m.Classification.Valid() {
		return fmt.Errorf("memory: classification %v is not one of OFFICIAL, OFFICIAL-SENSITIVE, SECRET, TOP-SECRET", m.Classification)
	}
	switch {
	case m.Text == "":
		return errors.New("memory: text is empty")
	case len(m.Text) > MaxTextBytes:
		return fmt.Errorf("memory: text is %d bytes; the limit is %d (MaxTextBytes)", len(m.Text), MaxTextBytes)
	case !utf8.ValidString(m.Text):
		return errors.New("memory: text is not valid UTF-8")
	}
	return nil
}

// Add stores one memory and returns it with its id and creation time.
func (s *Store) Add(ctx context.Context, m NewMemory) (*Memory, error) {
	ms, err := s.AddBatch(ctx, []NewMemory{m})
	if err != nil {
		return nil, err
	}
	return ms[0], nil
}

// AddRecorded stores one memory like Add, calling record with the memory and its Ref
// inside the write transaction, before it commits: the memory is stored only if record
// (the audit record of the write) succeeds.
func (s *Store) AddRecorded(ctx context.Context, m NewMemory, record func(*Memory, Ref) error) (*Memory, error) {
	ms, err := s.addBatch(ctx, []NewMemory{m}, func(ms []*Memory, refs []Ref) error { return record(ms[0], refs[0]) })
	if err != nil {
		return nil, err
	}
	return ms[0], nil
}

// AddBatch stores memories in one transaction: all are stored or none. Invalid input
// is refused before anything is written; the error names the first bad memory.
func (s *Store) AddBatch(ctx context.Context, ms []NewMemory) ([]*Memory, error) {
	return s.addBatch(ctx, ms, nil)
}

func (s *Store) addBatch(ctx context.Context, ms []NewMemory, record func([]*Memory, []Ref) error) ([]*Memory, error) {
	if len(ms) > MaxBatch {
		return nil, fmt.Errorf("memory: batch of %d memories; the limit is %d (MaxBatch)", len(ms), MaxBatch)
	}
	for i := range ms {
		if err := ms[i].check(); err != nil {
			if len(ms) > 1 {
				return nil, fmt.Errorf("memory %d of batch: %w", i, err)
			}
			return nil, err
		}
	}
	if len(ms) == 0 {
		return nil, nil
	}
	created := s.now().UTC()

	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("memory: add: %w", err)
	}
	defer tx.Rollback()
	// Another build may have rebuilt the index since Open; entries added now must be
	// made as the index's others were, or deleting them later would miss some.
	if err := s.ensureIndexTx(ctx, tx); err != nil {
		return nil, err
	}
	insMem, err := tx.PrepareContext(ctx, `INSERT INTO memories(id, tenant, subject, class, source, created, sealed) VALUES(?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return nil, fmt.Errorf("memory: add: %w", err)
	}
	defer insMem.Close()
	insFTS := prepareEntries(tx, &insertEntry)
	defer insFTS.Close()

	type subjectKey struct{ tenant, subject string }
	keys := make(map[subjectKey]subjectKeys)
	hashers := make(map[string]*hasher)
	out := make([]*Memory, len(ms))
	refs := make([]Ref, len(ms))
	for i, m := range ms {
		sk := subjectKey{m.Tenant, m.Subject}
		k, ok := keys[sk]
		if !ok {
			if k, err = s.dataKeyTx(ctx, tx, m.Tenant, m.Subject); err != nil {
				return nil, err
			}
			keys[sk] = k
		}
		aead := k.aead
		h := hashers[m.Tenant]
		if h == nil {
			h = newHasher(s.indexKey(m.Tenant))
			hashers[m.Tenant] = h
		}
		id := newID()
		sealed := seal(aead, []byte(m.Text), frame(contentDomain, m.Tenant, m.Subject, id))
		res, err := insMem.ExecContext(ctx, id, m.Tenant, m.Subject, int(m.Classification), m.Source, created.UnixNano(), sealed)
		if err != nil {
			return nil, fmt.Errorf("memory: add: %w", err)
		}
		rid, err := res.LastInsertId()
		if err != nil {
			return nil, fmt.Errorf("memory: add: %w", err)
		}
		if err := insFTS.exec(ctx, rid, h.scope(m.Subject), h.document(m.Text)); err != nil {
			return nil, fmt.Errorf("memory: add: index: %w", err)
		}
		out[i] = &Memory{ID: id, Tenant: m.Tenant, Subject: m.Subject, Classification: m.Classification,
			Source: m.Source, Created: created, Text: m.Text}
		refs[i] = Ref{Subject: pseudonym(k.audit, m.Tenant, m.Subject), Text: keyedDigest(k.audit, m.Text)}
	}
	if record != nil {
		if err := record(out, refs); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("memory: add: %w", err)
	}
	return out, nil
}

// dataKeyTx returns the subject's data key, creating and storing it (wrapped) if the
// subject is new.
func (s *Store) dataKeyTx(ctx context.Context, tx *sql.Tx, tenant, subject string) (subjectKeys, error) {
	var wrapped []byte
	err := tx.QueryRowContext(ctx, "SELECT wrapped FROM keys WHERE tenant = ? AND subject = ?", tenant, subject).Scan(&wrapped)
	if errors.Is(err, sql.ErrNoRows) {
		key, wrapped := s.newDataKey(tenant, subject)
		defer clear(key)
		if _, err := tx.ExecContext(ctx, "INSERT INTO keys(tenant, subject, wrapped) VALUES(?, ?, ?)", tenant, subject, wrapped); err != nil {
			return subjectKeys{}, fmt.Errorf("memory: add: store data key: %w", err)
		}
		return keysOf(key), nil
	}
	if err != nil {
		return subjectKeys{}, fmt.Errorf("memory: add: read data key: %w", err)
	}
	return s.unwrapDataKey(tenant, subject, wrapped)
}

// Ref is the audit reference of a subject (its pseudonym): under the subject's audit
// key while the store holds it, else under the tenant's key.
func (s *Store) Ref(ctx context.Context, tenant, subject string) (Ref, error) {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return Ref{}, fmt.Errorf("memory: %w", err)
	}
	defer tx.Rollback()
	return s.refTx(ctx, tx, tenant, subject)
}

// QueryDigest is the keyed digest of a search query that audit records hold: under the
// tenant's key, so that it confirms nothing to whoever guesses a query but lacks the
// node's key file.
func (s *Store) QueryDigest(tenant, query string) string {
	return keyedDigest(s.indexKey(tenant), query)
}

// Export is everything the store holds about one subject, decrypted: the document a
// data-portability request is answered with.
type Export struct {
	V        string    `json:"v"` // ExportVersion
	Tenant   string    `json:"tenant"`
	Subject  string    `json:"subject"`
	Exported time.Time `json:"exported"`
	Memories []Memory  `json:"memories"` // oldest first
}

// ExportVersion names the Export format. A format once published never changes meaning.
const ExportVersion = "sios-memory-export/1"

// Export returns every memory of the subject, decrypted, oldest first. Clearance is the
// caller's business: Export returns memories of every classification.
func (s *Store) Export(ctx context.Context, tenant, subject string) (*Export, error) {
	if err := checkName("tenant", tenant, true); err != nil {
		return nil, err
	}
	if err := checkName("subject", subject, true); err != nil {
		return nil, err
	}
	// One read transaction: a consistent snapshot of the rows and the key.
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("memory: export: %w", err)
	}
	defer tx.Rollback()
	var wrapped []byte
	err = tx.QueryRowContext(ctx, "SELECT wrapped FROM keys WHERE tenant = ? AND subject = ?", tenant, subject).Scan(&wrapped)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: tenant %q has no memories of subject %q", ErrUnknownSubject, tenant, subject)
	}
	if err != nil {
		return nil, fmt.Errorf("memory: export: %w", err)
	}
	k, err := s.unwrapDataKey(tenant, subject, wrapped)
	if err != nil {
		return nil, err
	}
	aead := k.aead
	rows, err := tx.QueryContext(ctx, `SELECT id, class, source, created, sealed FROM memories
		WHERE tenant = ? AND subject = ? ORDER BY created, rid`, tenant, subject)
	if err != nil {
		return nil, fmt.Errorf("memory: export: %w", err)
	}
	defer rows.Close()
	e := &Export{V: ExportVersion, Tenant: tenant, Subject: subject, Exported: s.now().UTC(), Memories: []Memory{}}
	for rows.Next() {
		m := Memory{Tenant: tenant, Subject: subject}
		var class int
		var created int64
		var sealed []byte
		if err := rows.Scan(&m.ID, &class, &m.Source, &created, &sealed); err != nil {
			return nil, fmt.Errorf("memory: export: %w", err)
		}
		m.Classification, m.Created = policy.Level(class), time.Unix(0, created).UTC()
		text, err := open(aead, sealed, frame(contentDomain, tenant, subject, m.ID))
		if err != nil {
			return nil, fmt.Errorf("memory: export: memory %s does not decrypt: %w", m.ID, err)
		}
		m.Text = string(text)
		e.Memories = append(e.Memories, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("memory: export: %w", err)
	}
	if len(e.Memories) == 0 {
		return nil, fmt.Errorf("%w: tenant %q has no memories of subject %q", ErrUnknownSubject, tenant, subject)
	}
	return e, nil
}
