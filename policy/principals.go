package policy

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sios-project/sios/internal/files"
)

// PrincipalsFile is the principal store inside a data directory.
const PrincipalsFile = "principals.json"

// APIKeyPrefix starts every API key, so that a leaked key is recognisable.
const APIKeyPrefix = "sios_"

var idPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._@-]{0,127}$`)

// tenantPattern is a local tenant's name: no '@', which qualifies the tenants of peers'
// principals (TENANT@ROOTID), so that no local tenant can take a peer's tenant's name.
var tenantPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}$`)

// StoredPrincipal is a user or service as stored: its API keys only as SHA-256 hashes.
type StoredPrincipal struct {
	ID        string      `json:"id"`
	Tenant    string      `json:"tenant"`
	Kind      string      `json:"kind"` // "user" or "service"
	Clearance string      `json:"clearance"`
	Roles     []string    `json:"roles,omitempty"`
	Keys      []StoredKey `json:"keys"`
	// KeyHashes is the keys of a store written by sios-principals/1; they are read
	// as keys named default, key-2, … and written back as Keys.
	KeyHashes []string `json:"key_hashes,omitempty"`
	// Disabled principals are kept (their history names them) but no key of theirs
	// authenticates.
	Disabled bool   `json:"disabled,omitempty"`
	Created  string `json:"created"`
}

// StoredKey is one API key of a principal: a name, its SHA-256, and when it stops
// working (never, if empty).
type StoredKey struct {
	Name    string `json:"name"`
	Hash    string `json:"sha256"`
	Created string `json:"created"`
	Expires string `json:"expires,omitempty"` // RFC 3339
}

// upgrade moves keys of the sios-principals/1 form into Keys.
func (sp *StoredPrincipal) upgrade() {
	for i, h := range sp.KeyHashes {
		name := "default"
		if i > 0 {
			name = fmt.Sprintf("key-%d", i+1)
		}
		sp.Keys = append(sp.Keys, StoredKey{Name: name, Hash: h, Created: sp.Created})
	}
	sp.KeyHashes = nil
}

// live says whether the key works at now.
func (k StoredKey) live(now time.Time) bool {
	if k.Expires == "" {
		return true
	}
	t, err := time.Parse(time.RFC3339, k.Expires)
	return err == nil && now.Before(t)
}

type principalsDoc struct {
	V          string             `json:"v"`
	Principals []*StoredPrincipal `json:"principals"`
}

// Principals is the principal store: a JSON file in the data directory, written
// atomically under an exclusive lock, so that the CLI and a running daemon can share it.
// A reader picks up changes another process made (Refresh).
type Principals struct {
	path string

	mu      sync.RWMutex
	byKey   map[[32]byte]*StoredPrincipal // guarded by mu
	byID    map[string]*StoredPrincipal   // guarded by mu; key: tenant + "/" + id
	modTime time.Time                     // guarded by mu
	size    int64                         // guarded by mu
}

// OpenPrincipals loads the store in dataDir (an absent file is an empty store).
func OpenPrincipals(dataDir string) (*Principals, error) {
	p := &Principals{path: filepath.Join(dataDir, PrincipalsFile)}
	if err := p.Refresh(); err != nil {
		return nil, err
	}
	return p, nil
}

// Refresh reloads the file if it changed since the last load.
func (p *Principals) Refresh() error {
	st, err := os.Stat(p.path)
	if errors.Is(err, os.ErrNotExist) {
		p.install(nil, time.Time{}, 0)
		return nil
	}
	if err != nil {
		return err
	}
	p.mu.RLock()
	same := st.ModTime().Equal(p.modTime) && st.Size() == p.size
	p.mu.RUnlock()
	if same {
		return nil
	}
	doc, err := readPrincipals(p.path)
	if err != nil {
		return err
	}
	p.install(doc.Principals, st.ModTime(), st.Size())
	return nil
}

func readPrincipals(path string) (*principalsDoc, error) {
	var doc principalsDoc
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &principalsDoc{V: "sios-principals/1"}, nil
	}
	if err != nil {
		return nil, err
	}
	if len(b) > MaxPrincipalsFile {
		return nil, fmt.Errorf("%s is %d bytes, more than %d (MaxPrincipalsFile)", path, len(b), MaxPrincipalsFile)
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s is corrupt: %v", path, err)
	}
	return &doc, nil
}

func (p *Principals) install(list []*StoredPrincipal, mod time.Time, size int64) {
	byKey := map[[32]byte]*StoredPrincipal{}
	byID := map[string]*StoredPrincipal{}
	for _, sp := range list {
		sp.upgrade()
		byID[sp.Tenant+"/"+sp.ID] = sp
		for _, key := range sp.Keys {
			var k [32]byte
			if b, err := hex.DecodeString(key.Hash); err == nil && len(b) == 32 {
				copy(k[:], b)
				byKey[k] = sp
			}
		}
	}
	p.mu.Lock()
	p.byKey, p.byID, p.modTime, p.size = byKey, byID, mod, size
	p.mu.Unlock()
}

// Authenticate finds the principal holding apiKey: a key of a principal that is not
// disabled, that has not expired. Lookup is by the key's SHA-256, so the comparison time
// does not depend on how much of a guessed key is right.
func (p *Principals) Authenticate(apiKey string) (*Principal, bool) {
	if !strings.HasPrefix(apiKey, APIKeyPrefix) || len(apiKey) > 256 {
		return nil, false
	}
	pr, _, ok := p.AuthenticateHash(sha256.Sum256([]byte(apiKey)))
	return pr, ok
}

// AuthenticateHash is Authenticate for a key known only by its SHA-256 (a console
// session keeps the hash, never the key), and also names the key. It fails once the
// key is revoked or rotated, expires, or its principal is disabled or removed.
func (p *Principals) AuthenticateHash(h [32]byte) (pr *Principal, keyName string, ok bool) {
	p.mu.RLock()
	sp, ok := p.byKey[h]
	p.mu.RUnlock()
	if !ok || sp.Disabled {
		return nil, "", false
	}
	now := time.Now()
	for _, k := range sp.Keys {
		if b, err := hex.DecodeString(k.Hash); err == nil && subtle.ConstantTimeCompare(b, h[:]) == 1 {
			if !k.live(now) {
				return nil, "", false
			}
			pr, err := sp.Principal()
			return pr, k.Name, err == nil
		}
	}
	return nil, "", false
}

// Find returns the stored principals with this id, in every tenant.
func (p *Principals) Find(id string) []StoredPrincipal {
	var out []StoredPrincipal
	for _, sp := range p.List() {
		if sp.ID == id {
			out = append(out, sp)
		}
	}
	return out
}

// ErrNoPrincipal is returned for a tenant/id the store does not hold.
var ErrNoPrincipal = errors.New("no such principal")

// Change is one change to a stored principal.
type Change struct {
	Remove    bool
	Disable   *bool     // set Disabled
	Clearance string    // set the clearance ("" leaves it)
	Roles     *[]string // set the roles (nil leaves them)
	// RotateKey issues a new key of this name, replacing the key of that name if there
	// is one; the principal's other keys stay. Expires, if not zero, ends the new key.
	RotateKey string
	Expires   time.Time
}

// ChangeRecorded applies c to the principal tenant/id, calling record (if not nil) with
// the principal as it will be stored, under the store's lock and before the file
// changes: nothing changes unless record (its audit record) succeeds. It returns the
// principal as stored and, for RotateKey, the new key (shown only this once).
func (p *Principals) ChangeRecorded(tenant, id string, c Change, now time.Time, record func(*StoredPrincipal) error) (*StoredPrincipal, string, error) {
	if c.Clearance != "" {
		if _, err := ParseLevel(c.Clearance); err != nil {
			return nil, "", err
		}
	}
	if c.Roles != nil {
		for _, r := range *c.Roles {
			if !idPattern.MatchString(r) {
				return nil, "", fmt.Errorf("role %q must be 1–128 letters, digits, '.', '_', '@' or '-'", r)
			}
		}
	}
	if c.RotateKey != "" && !idPattern.MatchString(c.RotateKey) {
		return nil, "", fmt.Errorf("key name %q must be 1–128 letters, digits, '.', '_', '@' or '-'", c.RotateKey)
	}
	if !c.Expires.IsZero() && !c.Expires.After(now) {
		return nil, "", fmt.Errorf("the key would expire at %s, which has passed", c.Expires.UTC().Format(time.RFC3339))
	}
	var out *StoredPrincipal
	var key string
	err := p.update(func(doc *principalsDoc) error {
		i := slices.IndexFunc(doc.Principals, func(x *StoredPrincipal) bool { return x.Tenant == tenant && x.ID == id })
		if i < 0 {
			return fmt.Errorf("%w: %s in tenant %s", ErrNoPrincipal, id, tenant)
		}
		sp := *doc.Principals[i]
		sp.upgrade()
		sp.Keys = slices.Clone(sp.Keys)
		if c.Disable != nil {
			sp.Disabled = *c.Disable
		}
		if c.Clearance != "" {
			sp.Clearance = c.Clearance
		}
		if c.Roles != nil {
			sp.Roles = slices.Clone(*c.Roles)
		}
		if c.RotateKey != "" {
			k, hash, err := newAPIKey()
			if err != nil {
				return err
			}
			sp.Keys = slices.DeleteFunc(sp.Keys, func(x StoredKey) bool { return x.Name == c.RotateKey })
			nk := StoredKey{Name: c.RotateKey, Hash: hash, Created: now.UTC().Format(time.RFC3339)}
			if !c.Expires.IsZero() {
				nk.Expires = c.Expires.UTC().Format(time.RFC3339)
			}
			sp.Keys = append(sp.Keys, nk)
			if len(sp.Keys) > MaxKeysPerPrincipal {
				return fmt.Errorf("principal %s would hold %d keys, more than %d (MaxKeysPerPrincipal)", id, len(sp.Keys), MaxKeysPerPrincipal)
			}
			key = k
		}
		if record != nil {
			if err := record(&sp); err != nil {
				return err
			}
		}
		if c.Remove {
			doc.Principals = slices.Delete(doc.Principals, i, i+1)
		} else {
			doc.Principals[i] = &sp
		}
		out = &sp
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return out, key, nil
}

// Get returns the principal id in tenant.
func (p *Principals) Get(tenant, id string) (*Principal, bool) {
	p.mu.RLock()
	sp, ok := p.byID[tenant+"/"+id]
	p.mu.RUnlock()
	if !ok {
		return nil, false
	}
	pr, err := sp.Principal()
	return pr, err == nil
}

// List returns every stored principal, sorted by tenant and id.
func (p *Principals) List() []StoredPrincipal {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]StoredPrincipal, 0, len(p.byID))
	for _, sp := range p.byID {
		out = append(out, *sp)
	}
	slices.SortFunc(out, func(a, b StoredPrincipal) int {
		return strings.Compare(a.Tenant+"/"+a.ID, b.Tenant+"/"+b.ID)
	})
	return out
}

// Principal converts the stored form to the decision-time form.
func (sp *StoredPrincipal) Principal() (*Principal, error) {
	lvl, err := ParseLevel(sp.Clearance)
	if err != nil {
		return nil, err
	}
	return &Principal{ID: sp.ID, Tenant: sp.Tenant, Clearance: lvl, Roles: sp.Roles}, nil
}

// NewPrincipal describes a principal to add.
type NewPrincipal struct {
	Tenant    string
	ID        string
	Kind      string // "user" (default) or "service"
	Clearance string
	Roles     []string
}

// ErrPrincipalExists is returned by Add for a tenant/id that is already stored.
var ErrPrincipalExists = errors.New("principal already exists")

// Add stores a new principal and returns its API key, which is shown only this once:
// the store keeps only its hash.
func (p *Principals) Add(np NewPrincipal, now time.Time) (string, *StoredPrincipal, error) {
	return p.AddRecorded(np, now, nil)
}

// AddRecorded adds a principal like Add, calling record (if not nil) with the new
// principal under the store's lock, after every check and before the file changes:
// the principal is stored only if record (its audit record) succeeds.
func (p *Principals) AddRecorded(np NewPrincipal, now time.Time, record func(*StoredPrincipal) error) (string, *StoredPrincipal, error) {
	if np.Kind == "" {
		np.Kind = "user"
	}
	if !idPattern.MatchString(np.ID) {
		return "", nil, fmt.Errorf("principal id %q must be 1–128 letters, digits, '.', '_', '@' or '-'", np.ID)
	}
	if !tenantPattern.MatchString(np.Tenant) {
		return "", nil, fmt.Errorf("tenant %q must be 1–128 letters, digits, '.', '_' or '-' ('@' is kept for the tenants of peers' principals, TENANT@ROOTID)", np.Tenant)
	}
	if np.Kind != "user" && np.Kind != "service" {
		return "", nil, fmt.Errorf("principal kind %q must be user or service", np.Kind)
	}
	if _, err := ParseLevel(np.Clearance); err != nil {
		return "", nil, err
	}
	for _, r := range np.Roles {
		if !idPattern.MatchString(r) {
			return "", nil, fmt.Errorf("role %q must be 1–128 letters, digits, '.', '_', '@' or '-'", r)
		}
	}
	key, hash, err := newAPIKey()
	if err != nil {
		return "", nil, err
	}
	created := now.UTC().Format(time.RFC3339)
	sp := &StoredPrincipal{ID: np.ID, Tenant: np.Tenant, Kind: np.Kind, Clearance: np.Clearance,
		Roles: np.Roles, Keys: []StoredKey{{Name: "default", Hash: hash, Created: created}}, Created: created}
	err = p.update(func(doc *principalsDoc) error {
		for _, x := range doc.Principals {
			if x.Tenant == sp.Tenant && x.ID == sp.ID {
				return fmt.Errorf("%w: %s in tenant %s", ErrPrincipalExists, sp.ID, sp.Tenant)
			}
		}
		if len(doc.Principals) >= MaxPrincipals {
			return fmt.Errorf("the store already holds %d principals (MaxPrincipals)", MaxPrincipals)
		}
		if record != nil {
			if err := record(sp); err != nil {
				return err
			}
		}
		doc.Principals = append(doc.Principals, sp)
		return nil
	})
	if err != nil {
		return "", nil, err
	}
	return key, sp, nil
}

// update applies change to the file under an exclusive lock and reloads.
func (p *Principals) update(change func(*principalsDoc) error) error {
	lock, err := os.OpenFile(p.path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	doc, err := readPrincipals(p.path)
	if err != nil {
		return err
	}
	doc.V = "sios-principals/2"
	for _, sp := range doc.Principals {
		sp.upgrade()
	}
	if err := change(doc); err != nil {
		return err
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	if err := files.Replace(p.path, append(b, '\n'), 0o600); err != nil {
		return err
	}
	st, err := os.Stat(p.path)
	if err != nil {
		return err
	}
	p.install(doc.Principals, st.ModTime(), st.Size())
	return nil
}

var keyEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

func newAPIKey() (key, hash string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	key = APIKeyPrefix + strings.ToLower(keyEncoding.EncodeToString(b))
	h := sha256.Sum256([]byte(key))
	return key, hex.EncodeToString(h[:]), nil
}
