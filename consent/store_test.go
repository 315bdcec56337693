package consent

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sios-project/sios/policy"
)

// openStore opens the hospital's store in dir.
func openStore(t testing.TB, fx *fixture, dir string) *Store {
	t.Helper()
	s, err := OpenStore(dir, fx.hospital.signer())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func addGrant(t testing.TB, fx *fixture, s *Store, g Grant) *Entry {
	t.Helper()
	e, err := s.Add(mustSign(t, fx.hospital.node, g), t0)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestStoreLifecycle(t *testing.T) {
	fx := newFixture()
	dir := t.TempDir()
	s := openStore(t, fx, dir)
	inv := addGrant(t, fx, s, fx.invokeGrant()) // 3 uses
	mem := addGrant(t, fx, s, fx.memoryGrant()) // no count
	if inv.State(t0) != StateActive || inv.Remaining() != 3 || mem.Remaining() != -1 {
		t.Fatalf("fresh grants: %v %d, %v %d", inv.State(t0), inv.Remaining(), mem.State(t0), mem.Remaining())
	}
	now := t0.Add(time.Minute)
	for i := 1; i <= 3; i++ {
		e, err := s.Use(inv.Grant.ID, now)
		if err != nil || e.Used != i {
			t.Fatalf("use %d: %v, used %v", i, err, e)
		}
	}
	_, err := s.Use(inv.Grant.ID, now)
	wantCode(t, err, CodeUsedUp)
	if e, _ := s.Get(inv.Grant.ID); e.Used != 3 || e.State(now) != StateUsed {
		t.Fatalf("after a refused use: used %d, state %s", e.Used, e.State(now))
	}
	if _, err := s.Use(mem.Grant.ID, now); err != nil {
		t.Fatal(err)
	}
	r, err := s.Revoke(mem.Grant.ID, now)
	if err != nil || r.State(now) != StateRevoked || !r.Revoked.Equal(now) {
		t.Fatalf("revoke: %v, %+v", err, r)
	}
	_, err = s.Use(mem.Grant.ID, now)
	wantCode(t, err, CodeRevoked)
	if r2, err := s.Revoke(mem.Grant.ID, now.Add(time.Hour)); err != nil || !r2.Revoked.Equal(now) {
		t.Fatalf("a second revocation moved the first: %v %v", r2.Revoked, err)
	}

	// Everything survives a reopen, byte for byte.
	s2 := openStore(t, fx, dir)
	list, err := s2.List()
	if err != nil || len(list) != 2 {
		t.Fatalf("list after reopen: %v, %d", err, len(list))
	}
	byID := map[string]*Entry{}
	for _, e := range list {
		byID[e.Grant.ID] = e
	}
	if e := byID[inv.Grant.ID]; e.Used != 3 || !bytes.Equal(e.Raw, inv.Raw) {
		t.Fatalf("the invoke grant after reopen: used %d, raw equal %v", e.Used, bytes.Equal(e.Raw, inv.Raw))
	}
	if e := byID[mem.Grant.ID]; e.Used != 1 || !e.Revoked.Equal(now) {
		t.Fatalf("the memory grant after reopen: used %d, revoked %v", e.Used, e.Revoked)
	}
	// Expiry.
	g := fx.invokeGrant()
	g.ID = NewID()
	exp := addGrant(t, fx, s2, g)
	_, err = s2.Use(exp.Grant.ID, exp.Grant.ExpiresAt())
	wantCode(t, err, CodeExpired)
	if st := exp.State(exp.Grant.ExpiresAt()); st != StateExpired {
		t.Fatalf("state at expiry: %s", st)
	}
	// Unknown ids.
	_, err = s2.Use(NewID(), now)
	wantCode(t, err, CodeUnknown)
	_, err = s2.Use("../../etc/passwd", now)
	wantCode(t, err, CodeUnknown)
	_, err = s2.Revoke(NewID(), now)
	wantCode(t, err, CodeUnknown)
	_, err = s2.Get(NewID())
	wantCode(t, err, CodeUnknown)

	// Files: one per grant, owner-only.
	for _, e := range list {
		st, err := os.Stat(filepath.Join(dir, Dir, e.Grant.ID+".json"))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("grant file: %v, mode %v", err, st.Mode())
		}
	}
}

func TestStoreAddRefusals(t *testing.T) {
	fx := newFixture()
	s := openStore(t, fx, t.TempDir())
	good := mustSign(t, fx.hospital.node, fx.invokeGrant())
	if _, err := s.Add(good, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(good, t0); err == nil || !strings.Contains(err.Error(), "already holds") {
		t.Fatalf("a second Add of one grant: %v", err)
	}
	g := fx.invokeGrant()
	g.ID, g.Origin = NewID(), Origin{Node: fx.practice.nodeID, Institution: fx.practice.rootID}
	_, err := s.Add(mustSign(t, fx.practice.node, g), t0)
	wantCode(t, err, CodeForged)
	g = fx.invokeGrant()
	g.ID = NewID()
	_, err = s.Add(mustSign(t, fx.hospital.node, g), t0.AddDate(1, 0, 0))
	wantCode(t, err, CodeExpired)
	_, err = s.Add([]byte(`{"v":"consent-grant/1"}`), t0)
	wantCode(t, err, CodeMalformed)
	if list, _ := s.List(); len(list) != 1 {
		t.Fatalf("refused grants were stored: %d held", len(list))
	}
}

// TestStoreConcurrentUse: two stores on one directory (as two processes would have) and
// many goroutines race to use a grant: exactly its count of uses succeed, and the file
// says so.
func TestStoreConcurrentUse(t *testing.T) {
	fx := newFixture()
	dir := t.TempDir()
	a, b := openStore(t, fx, dir), openStore(t, fx, dir)
	g := fx.invokeGrant()
	g.Uses = 25
	e := addGrant(t, fx, a, g)
	var ok, usedUp atomic.Int64
	var wg sync.WaitGroup
	for i := range 16 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			for range 4 {
				_, err := s.Use(e.Grant.ID, t0.Add(time.Minute))
				switch CodeOf(err) {
				case "":
					if err != nil {
						t.Error(err)
						return
					}
					ok.Add(1)
				case CodeUsedUp:
					usedUp.Add(1)
				default:
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if ok.Load() != 25 || usedUp.Load() != 64-25 {
		t.Fatalf("%d uses succeeded and %d were refused; want 25 and %d", ok.Load(), usedUp.Load(), 64-25)
	}
	c := openStore(t, fx, dir)
	if got, _ := c.Get(e.Grant.ID); got.Used != 25 {
		t.Fatalf("the file records %d uses", got.Used)
	}
}

// TestRevocationIsImmediateAcrossStores: a grant revoked through one store is refused by
// another store on the same directory at once, whatever the other holds in memory.
func TestRevocationIsImmediateAcrossStores(t *testing.T) {
	fx := newFixture()
	dir := t.TempDir()
	a, b := openStore(t, fx, dir), openStore(t, fx, dir)
	e := addGrant(t, fx, a, fx.memoryGrant())
	if _, err := b.Use(e.Grant.ID, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Revoke(e.Grant.ID, t0); err != nil {
		t.Fatal(err)
	}
	_, err := b.Use(e.Grant.ID, t0)
	wantCode(t, err, CodeRevoked)
	u := fx.memoryUse()
	_, err = b.Find("okafor", u)
	wantCode(t, err, CodeRequired)
}

func TestStoreFind(t *testing.T) {
	fx := newFixture()
	s := openStore(t, fx, t.TempDir())
	u := fx.invokeUse()
	_, err := s.Find("dr.adeyemi", u)
	wantCode(t, err, CodeRequired)
	if !strings.Contains(err.Error(), "has made no grant") {
		t.Fatalf("with no grants: %v", err)
	}

	long := fx.invokeGrant()
	long.ID = "1111111111111111111111111111111a"
	long.Expires = "2026-06-01T09:00:00Z"
	addGrant(t, fx, s, long)
	short := fx.invokeGrant() // expires 2026-04-01
	addGrant(t, fx, s, short)
	lowMax := fx.invokeGrant()
	lowMax.ID, lowMax.Scope.Max = "2222222222222222222222222222222b", policy.Official
	lowMax.Expires = "2026-03-03T09:00:00Z"
	addGrant(t, fx, s, lowMax)

	e, err := s.Find("dr.adeyemi", u)
	if err != nil || e.Grant.ID != short.ID {
		t.Fatalf("Find chose %v (%v); want the covering grant that expires first, %s", e, err, short.ID)
	}
	if _, err := s.Revoke(short.ID, t0); err != nil {
		t.Fatal(err)
	}
	if e, err = s.Find("dr.adeyemi", u); err != nil || e.Grant.ID != long.ID {
		t.Fatalf("after revoking it, Find chose %v (%v); want %s", e, err, long.ID)
	}
	for _, tc := range []struct {
		name      string
		principal string
		use       func(u *Use)
		says      string
	}{
		{"another principal's grants", "dr.ng", nil, "has made no grant"},
		{"another tenant", "dr.adeyemi", func(u *Use) { u.Tenant = "cardiology" }, "has made no grant"},
		{"another brain", "dr.adeyemi", func(u *Use) { u.Brain = "clinical-coding" }, "covers brain oncology-mdt, not clinical-coding"},
		{"another institution", "dr.adeyemi", func(u *Use) { u.Institution = fx.third.rootID }, "is for institution"},
		{"SECRET data", "dr.adeyemi", func(u *Use) { u.Classification = policy.Secret }, "covers data up to OFFICIAL-SENSITIVE, not SECRET"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := fx.invokeUse()
			if tc.use != nil {
				tc.use(&u)
			}
			_, err := s.Find(tc.principal, u)
			wantCode(t, err, CodeRequired)
			if !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("the refusal %q does not say %q", err, tc.says)
			}
		})
	}
	// Both grants that would cover it are now out of use (one revoked, one used up):
	// Find names one of them rather than a grant that never covered the request.
	for {
		if _, err := s.Use(long.ID, t0); err != nil {
			break
		}
	}
	_, err = s.Find("dr.adeyemi", u)
	wantCode(t, err, CodeRequired)
	if msg := err.Error(); !strings.Contains(msg, "used 3 of 3") && !strings.Contains(msg, short.ID+" was revoked") {
		t.Fatalf("the refusal %q does not name the grant that is used up or revoked", err)
	}
}

// TestStoreSeesAnotherProcessesGrants: a grant added through another store (process) is
// listed and found without reopening.
func TestStoreSeesAnotherProcessesGrants(t *testing.T) {
	fx := newFixture()
	dir := t.TempDir()
	a, b := openStore(t, fx, dir), openStore(t, fx, dir)
	if l, _ := b.List(); len(l) != 0 {
		t.Fatal("a new store is not empty")
	}
	addGrant(t, fx, a, fx.invokeGrant())
	time.Sleep(10 * time.Millisecond) // the directory's time must move on a coarse clock
	e, err := b.Find("dr.adeyemi", fx.invokeUse())
	if err != nil || e.Grant.ID != fx.invokeGrant().ID {
		t.Fatalf("the other store does not see the new grant: %v", err)
	}
}

// TestStoreRefusesBadFiles: a file that does not parse, holds another grant than its
// name says, or is not this node's stops the open with an error naming it; temporary
// files a crash left are removed; other names are ignored.
func TestStoreRefusesBadFiles(t *testing.T) {
	fx := newFixture()
	good := func(t *testing.T) (string, []byte) {
		dir := t.TempDir()
		s := openStore(t, fx, dir)
		e := addGrant(t, fx, s, fx.invokeGrant())
		b, err := os.ReadFile(filepath.Join(dir, Dir, e.Grant.ID+".json"))
		if err != nil {
			t.Fatal(err)
		}
		return dir, b
	}
	id := fx.invokeGrant().ID
	for name, f := range map[string]func(dir string, b []byte){
		"truncated": func(dir string, b []byte) { os.WriteFile(filepath.Join(dir, Dir, id+".json"), b[:len(b)/2], 0o600) },
		"renamed": func(dir string, b []byte) {
			os.WriteFile(filepath.Join(dir, Dir, strings.Repeat("a", 32)+".json"), b, 0o600)
		},
		"used beyond the count": func(dir string, b []byte) {
			os.WriteFile(filepath.Join(dir, Dir, id+".json"), bytes.Replace(b, []byte(`"used":0`), []byte(`"used":4`), 1), 0o600)
		},
		"another node's grant": func(dir string, b []byte) {
			g := fx.invokeGrant()
			g.ID, g.Origin = NewID(), Origin{Node: fx.practice.nodeID, Institution: fx.practice.rootID}
			e := &Entry{Grant: nil, Raw: mustSign(t, fx.practice.node, g)}
			e.Grant = mustParse(t, e.Raw)
			sb, err := EncodeState(e)
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, Dir, g.ID+".json"), sb, 0o600)
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir, b := good(t)
			f(dir, b)
			_, err := OpenStore(dir, fx.hospital.signer())
			if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, Dir)) {
				t.Fatalf("OpenStore: %v; want an error naming the file", err)
			}
		})
	}
	dir, _ := good(t)
	stray := filepath.Join(dir, Dir, "."+id+".json.tmp12345")
	other := filepath.Join(dir, Dir, "README")
	os.WriteFile(stray, []byte("half a grant"), 0o600)
	os.WriteFile(other, []byte("notes"), 0o600)
	s := openStore(t, fx, dir)
	if _, err := os.Stat(stray); !os.IsNotExist(err) {
		t.Fatal("a temporary file left by a crash survived OpenStore")
	}
	if l, err := s.List(); err != nil || len(l) != 1 {
		t.Fatalf("with a stray file: %v, %d grants", err, len(l))
	}
}

// TestStateFileForm: the store file is canonical consent-state/1 holding the grant's
// exact bytes, and ParseState refuses what EncodeState would not write.
func TestStateFileForm(t *testing.T) {
	fx := newFixture()
	raw := mustSign(t, fx.hospital.node, fx.invokeGrant())
	e := &Entry{Grant: mustParse(t, raw), Raw: raw, Used: 2, Revoked: t0}
	b, err := EncodeState(e)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"grant":` + string(raw) + `,"revoked":"2026-03-02T09:00:00Z","used":2,"v":"consent-state/1"}`
	if string(b) != want {
		t.Fatalf("store file:\n%s\nwant\n%s", b, want)
	}
	back, err := ParseState(b)
	if err != nil || back.Used != 2 || !back.Revoked.Equal(t0) || !bytes.Equal(back.Raw, raw) {
		t.Fatalf("ParseState: %v %+v", err, back)
	}
	for name, bad := range map[string]string{
		"negative use count":              strings.Replace(want, `"used":2`, `"used":-1`, 1),
		"more uses than the grant allows": strings.Replace(want, `"used":2`, `"used":4`, 1),
		"revoked not a time":              strings.Replace(want, `"revoked":"2026-03-02T09:00:00Z"`, `"revoked":"today"`, 1),
		"revoked empty":                   strings.Replace(want, `"revoked":"2026-03-02T09:00:00Z"`, `"revoked":""`, 1),
		"unknown member":                  strings.Replace(want, `"used":2`, `"used":2,"uses_left":1`, 1),
		"other version":                   strings.Replace(want, `consent-state/1`, `consent-state/2`, 1),
		"altered grant":                   strings.Replace(want, `"retain":false`, `"retain":true `, 1),
	} {
		if _, err := ParseState([]byte(bad)); err == nil {
			t.Errorf("%s: ParseState accepted it", name)
		}
	}
}
