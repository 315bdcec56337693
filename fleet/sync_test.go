package fleet

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/sios-project/sios/identity"
)

// A record whose text holds <, > or & must cross the fleet API byte for byte:
// encoding/json's default HTML escaping would make it non-canonical.
func TestSyncBodiesKeepCanonicalBytes(t *testing.T) {
	res, err := identity.Init(filepath.Join(t.TempDir(), "n"), "R&D <lab>", "", t0)
	if err != nil {
		t.Fatal(err)
	}
	rec := newFeed(t, res.Node).recs[0]
	trust := NewTrust(res.Node.Root)
	for _, tc := range []struct {
		name    string
		marshal func(any) ([]byte, error)
		ok      bool
	}{
		{"Marshal", Marshal, true},
		{"encoding/json default", json.Marshal, false},
	} {
		body, err := tc.marshal(syncMsg{Node: res.Node.ID(), Records: []json.RawMessage{rec}})
		if err != nil {
			t.Fatal(err)
		}
		var got syncMsg
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		_, err = NewLog().Add(got.Records[0], trust)
		if (err == nil) != tc.ok {
			t.Errorf("%s: record after the round trip: %v", tc.name, err)
		}
	}
}
