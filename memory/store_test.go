package memory

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sios-project/sios/policy"
)

func TestSearchClearanceAndTenant(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	defer s.Close()
	var adds []NewMemory
	for _, tenant := range []string{"acme", "globex"} {
		for _, l := range policy.Levels() {
			adds = append(adds, NewMemory{Tenant: tenant, Subject: "case-1", Classification: l, Source: "test",
				Text: "The submarine cable survey is marked " + l.String() + " for " + tenant})
		}
	}
	adds = append(adds, NewMemory{Tenant: "acme", Subject: "case-2", Classification: policy.Official, Source: "test", Text: "Submarine sandwiches for the cable crew."})
	if _, err := s.AddBatch(ctx, adds); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		tenant    string
		subject   string
		clearance policy.Level
		want      int
	}{
		{"official sees official only", "acme", "", policy.Official, 2},
		{"official-sensitive", "acme", "", policy.OfficialSensitive, 3},
		{"secret", "acme", "", policy.Secret, 4},
		{"top-secret sees all", "acme", "", policy.TopSecret, 5},
		{"subject filter", "acme", "case-1", policy.TopSecret, 4},
		{"subject filter and clearance", "acme", "case-2", policy.Secret, 1},
		{"other tenant", "globex", "", policy.TopSecret, 4},
		{"unknown tenant", "initech", "", policy.TopSecret, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := s.Search(ctx, Query{Tenant: tc.tenant, Subject: tc.subject, Clearance: tc.clearance, Text: "submarine cable"})
			if err != nil {
				t.Fatal(err)
			}
			if len(res) != tc.want {
				t.Fatalf("got %d results, want %d: %+v", len(res), tc.want, res)
			}
			for i, r := range res {
				if r.Tenant != tc.tenant || r.Classification > tc.clearance || (tc.subject != "" && r.Subject != tc.subject) {
					t.Errorf("result %+v breaks tenant %s / clearance %v / subject %q", r, tc.tenant, tc.clearance, tc.subject)
				}
				if tc.tenant != "initech" && !strings.Contains(r.Text, tc.tenant) && r.Subject == "case-1" {
					t.Errorf("result %d decrypted to %q", i, r.Text)
				}
				if i > 0 && r.Score > res[i-1].Score {
					t.Errorf("results not ranked: %v after %v", r.Score, res[i-1].Score)
				}
			}
		})
	}
	// A memory holding both words ranks above one holding one.
	res, _ := s.Search(ctx, Query{Tenant: "acme", Clearance: policy.TopSecret, Text: "survey marked"})
	if len(res) == 0 || !strings.Contains(res[0].Text, "survey") {
		t.Errorf("ranking: %+v", res)
	}
	// JSON shape the integrator relies on.
	b, _ := json.Marshal(res[0])
	for _, k := range []string{`"id":"mem_`, `"subject":`, `"classification":"`, `"score":`, `"text":`, `"created":`, `"source":`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("result JSON %s lacks %s", b, k)
		}
	}
}

func TestAddExportRoundTrip(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2031, 5, 6, 7, 8, 9, 123, time.UTC)
	s, err := Open(t.TempDir(), Options{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	texts := []string{"first ünïcödé memory — 東京", "second memory"}
	for _, text := range texts {
		m, err := s.Add(ctx, NewMemory{Tenant: "t", Subject: "s", Classification: policy.Secret, Source: "src", Text: text})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(m.ID, "mem_") || len(m.ID) != 30 || !m.Created.Equal(t0) {
			t.Errorf("Add returned %+v", m)
		}
	}
	e, err := s.Export(ctx, "t", "s")
	if err != nil {
		t.Fatal(err)
	}
	if e.V != ExportVersion || len(e.Memories) != 2 || e.Memories[0].Text != texts[0] || e.Memories[1].Classification != policy.Secret {
		t.Fatalf("export %+v", e)
	}
	b, err := json.Marshal(e)
	if err != nil || !strings.Contains(string(b), `"classification":"SECRET"`) {
		t.Fatalf("export JSON %s, %v", b, err)
	}
	res, err := s.Search(ctx, Query{Tenant: "t", Clearance: policy.Secret, Text: "東京"})
	if err != nil || len(res) != 1 || res[0].Text != texts[0] {
		t.Fatalf("search of a non-Latin word: %+v, %v", res, err)
	}
}

func TestMalformedInput(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	defer s.Close()
	good := NewMemory{Tenant: "t", Subject: "s", Classification: policy.Official, Source: "src", Text: "keep me safe"}
	if _, err := s.Add(ctx, good); err != nil {
		t.Fatal(err)
	}
	with := func(f func(*NewMemory)) NewMemory { m := good; f(&m); return m }
	long := strings.Repeat("x", MaxNameBytes+1)
	tests := []struct {
		name string
		run  func() error
		want string
	}{
		{"empty tenant", func() error { _, err := s.Add(ctx, with(func(m *NewMemory) { m.Tenant = "" })); return err }, "tenant is empty"},
		{"empty subject", func() error { _, err := s.Add(ctx, with(func(m *NewMemory) { m.Subject = "" })); return err }, "subject is empty"},
		{"long tenant", func() error { _, err := s.Add(ctx, with(func(m *NewMemory) { m.Tenant = long })); return err }, "MaxNameBytes"},
		{"long source", func() error { _, err := s.Add(ctx, with(func(m *NewMemory) { m.Source = long })); return err }, "MaxNameBytes"},
		{"bad subject UTF-8", func() error { _, err := s.Add(ctx, with(func(m *NewMemory) { m.Subject = "\xff" })); return err }, "UTF-8"},
		{"no classification", func() error { _, err := s.Add(ctx, with(func(m *NewMemory) { m.Classification = 0 })); return err }, "classification"},
		{"empty text", func() error { _, err := s.Add(ctx, with(func(m *NewMemory) { m.Text = "" })); return err }, "text is empty"},
		{"oversized text", func() error {
			_, err := s.Add(ctx, with(func(m *NewMemory) { m.Text = strings.Repeat("a", MaxTextBytes+1) }))
			return err
		}, "MaxTextBytes"},
		{"bad text UTF-8", func() error { _, err := s.Add(ctx, with(func(m *NewMemory) { m.Text = "ok \xc3\x28" })); return err }, "UTF-8"},
		{"batch too big", func() error { _, err := s.AddBatch(ctx, make([]NewMemory, MaxBatch+1)); return err }, "MaxBatch"},
		{"bad memory in batch", func() error {
			_, err := s.AddBatch(ctx, []NewMemory{good, good, with(func(m *NewMemory) { m.Text = "" })})
			return err
		}, "memory 2 of batch"},
		{"query too long", func() error {
			_, err := s.Search(ctx, Query{Tenant: "t", Clearance: policy.Official, Text: strings.Repeat("a ", MaxQueryBytes)})
			return err
		}, "MaxQueryBytes"},
		{"no clearance", func() error { _, err := s.Search(ctx, Query{Tenant: "t", Text: "keep"}); return err }, "clearance"},
		{"search without tenant", func() error { _, err := s.Search(ctx, Query{Clearance: policy.Official, Text: "keep"}); return err }, "tenant is empty"},
		{"forget unknown subject", func() error { _, err := s.Forget(ctx, "t", "nobody"); return err }, "unknown subject"},
		{"forget in unknown tenant", func() error { _, err := s.Forget(ctx, "other", "s"); return err }, "unknown subject"},
		{"export unknown subject", func() error { _, err := s.Export(ctx, "t", "nobody"); return err }, "unknown subject"},
		{"retention negative", func() error {
			_, err := s.Expire(ctx, time.Now(), Retention{PerTenant: map[string]time.Duration{"t": -1}})
			return err
		}, "must be positive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
			e, err := s.Export(ctx, "t", "s")
			if err != nil || len(e.Memories) != 1 || e.Memories[0].Text != good.Text {
				t.Fatalf("after the refused call the store holds %+v, %v", e, err)
			}
		})
	}
	if _, err := s.Forget(ctx, "t", "nobody"); !errors.Is(err, ErrUnknownSubject) {
		t.Errorf("Forget of an unknown subject: %v, want errors.Is ErrUnknownSubject", err)
	}
	// Queries with no words, limits out of range: no error.
	for _, q := range []Query{{Text: ""}, {Text: "   ...!!!"}, {Text: "keep", Limit: -5}, {Text: "keep", Limit: 1 << 30}} {
		q.Tenant, q.Clearance = "t", policy.Official
		if _, err := s.Search(ctx, q); err != nil {
			t.Errorf("Search(%+v): %v", q, err)
		}
	}
}

func TestKeyFile(t *testing.T) {
	ctx := context.Background()
	setup := func(t *testing.T) string {
		dir := t.TempDir()
		s := openStore(t, dir)
		if _, err := s.Add(ctx, NewMemory{Tenant: "t", Subject: "s", Classification: policy.Official, Text: "sealed under the first key"}); err != nil {
			t.Fatal(err)
		}
		s.Close()
		return dir
	}
	tests := []struct {
		name   string
		damage func(kek string) error
		want   string
	}{
		{"group-readable", func(k string) error { return os.Chmod(k, 0o640) }, "chmod 600"},
		{"world-readable", func(k string) error { return os.Chmod(k, 0o644) }, "chmod 600"},
		{"replaced by another key", func(k string) error { return os.WriteFile(k, make([]byte, 32), 0o600) }, "not the key"},
		{"truncated", func(k string) error { return os.WriteFile(k, make([]byte, 31), 0o600) }, "holds 31 bytes"},
		{"missing", os.Remove, "missing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := setup(t)
			kek := filepath.Join(dir, "memory.kek")
			if err := tc.damage(kek); err != nil {
				t.Fatal(err)
			}
			_, err := Open(dir, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open: %v, want an error mentioning %q", err, tc.want)
			}
			if tc.name != "missing" && !strings.Contains(err.Error(), kek) {
				t.Errorf("error %q does not name %s", err, kek)
			}
		})
	}
}

func TestFileModes(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	defer s.Close()
	if _, err := s.Add(context.Background(), NewMemory{Tenant: "t", Subject: "s", Classification: policy.Official, Text: "x"}); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{
		"memory.kek":           0o600,
		"memory":               0o700 | os.ModeDir,
		"memory/memory.db":     0o600,
		"memory/memory.db-wal": 0o600,
		"memory/memory.db-shm": 0o600,
	} {
		fi, err := os.Stat(filepath.Join(dir, path))
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if got := fi.Mode() & (os.ModePerm | os.ModeDir); got != want {
			t.Errorf("%s has mode %v, want %v", path, got, want)
		}
	}
}

func TestExpire(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s, err := Open(t.TempDir(), Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	add := func(tenant, subject string, l policy.Level, age time.Duration) string {
		t.Helper()
		saved := now
		now = now.Add(-age)
		m, err := s.Add(ctx, NewMemory{Tenant: tenant, Subject: subject, Classification: l, Text: "retention test " + subject})
		now = saved
		if err != nil {
			t.Fatal(err)
		}
		return m.ID
	}
	day := 24 * time.Hour
	oldSecret := add("a", "s1", policy.Secret, 10*day) // class period 7d wins over tenant 30d → expires
	add("a", "s1", policy.Official, 10*day)            // tenant 30d → kept
	oldA := add("a", "s2", policy.Official, 40*day)    // tenant 30d → expires; s2 has nothing left
	add("b", "s1", policy.Official, 400*day)           // no period applies → kept
	oldBSecret := add("b", "s3", policy.Secret, 8*day) // class 7d → expires
	add("b", "s3", policy.Secret, 6*day)               // class 7d, younger → kept
	r := Retention{PerTenant: map[string]time.Duration{"a": 30 * day}, PerClassification: map[policy.Level]time.Duration{policy.Secret: 7 * day}}
	got, err := s.Expire(ctx, now, r)
	if err != nil {
		t.Fatal(err)
	}
	want := []Forgotten{{"a", "s1", []string{oldSecret}, false}, {"a", "s2", []string{oldA}, true}, {"b", "s3", []string{oldBSecret}, false}}
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want)
	if string(gb) != string(wb) {
		t.Fatalf("Expire forgot %s, want %s", gb, wb)
	}
	if _, err := s.Export(ctx, "a", "s2"); !errors.Is(err, ErrUnknownSubject) {
		t.Errorf("subject with every memory expired: Export %v", err)
	}
	st, err := s.Stats(ctx)
	if err != nil || st.Memories != 3 || st.Subjects != 3 || st.PurgePending {
		t.Errorf("Stats after expire: %+v, %v", st, err)
	}
	if again, err := s.Expire(ctx, now, r); err != nil || len(again) != 0 {
		t.Errorf("second Expire: %+v, %v", again, err)
	}
}

func TestConcurrentUse(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	defer s.Close()
	s2 := openStore(t, dir) // a second handle, as another process would have
	defer s2.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := s
			if w%2 == 1 {
				st = s2
			}
			subject := "subj-" + string(rune('a'+w))
			for i := 0; i < 20; i++ {
				if _, err := st.Add(ctx, NewMemory{Tenant: "t", Subject: subject, Classification: policy.Official, Text: "concurrent memory about lighthouses"}); err != nil {
					errs <- err
					return
				}
				if _, err := st.Search(ctx, Query{Tenant: "t", Clearance: policy.Official, Text: "lighthouses"}); err != nil {
					errs <- err
					return
				}
				if i%5 == 4 {
					if _, err := st.Forget(ctx, "t", subject); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// The store's path reaches SQLite as a URI. A data directory whose name holds a
// character a URI gives meaning to ('#' ends the path, '?' starts the query, '%' an
// escape) must still open the database inside it, not another one: the memories are
// found again after a reopen, the files SQLite writes are in the directory, and
// nothing is created beside it.
func TestOpenInADirectoryWithURICharacters(t *testing.T) {
	for _, name := range []string{"node#01", "node?mode=ro", "node%23x", "node with spaces&x=1", "relative"} {
		t.Run(name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, name)
			if name == "relative" { // as `sios --data node-a` gives it
				t.Chdir(parent)
				dir = name
			}
			ctx := context.Background()
			s := openStore(t, dir)
			if _, err := s.Add(ctx, NewMemory{Tenant: "t", Subject: "s", Classification: policy.Official, Source: "src", Text: "the harbour survey"}); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(dir, "memory", "memory.db-wal")); err != nil {
				t.Errorf("SQLite's WAL is not in the data directory: %v", err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openStore(t, dir)
			defer s.Close()
			e, err := s.Export(ctx, "t", "s")
			if err != nil || len(e.Memories) != 1 || e.Memories[0].Text != "the harbour survey" {
				t.Fatalf("after reopening %s: %+v, %v", dir, e, err)
			}
			entries, err := os.ReadDir(parent)
			if err != nil {
				t.Fatal(err)
			}
			for _, ent := range entries {
				if ent.Name() != name {
					t.Errorf("%s was created beside the data directory", ent.Name())
				}
			}
		})
	}
}
