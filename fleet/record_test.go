package fleet

import (
	"bytes"
	"crypto/sha256"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	fx := newFixture(t)
	fb := newFeed(t, fx.a1).standard()
	posture := fb.recs[1]
	for i, r := range fb.recs {
		p, err := Parse(r)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if p.Seq != uint64(i) || p.Content() == nil {
			t.Fatalf("record %d parsed as %+v", i, p)
		}
		again, err := encode(p)
		if err != nil || !bytes.Equal(again, r) {
			t.Fatalf("record %d does not re-encode to itself", i)
		}
	}
	tests := []struct {
		name string
		rec  []byte
		err  string
	}{
		{"not canonical", replace(t, posture, `{"body"`, `{ "body"`), "not in canonical form"},
		{"extra member", replace(t, posture, `,"v":"fed/1"}`, `,"v":"fed/1","w":1}`), `unknown object member name "w"`},
		{"missing member", replace(t, posture, `"kind":"posture",`, ``), "kind \"\""},
		{"missing sig", posture[:bytes.Index(posture, []byte(`,"sig"`))+0], ""},
		{"wrong version", replace(t, posture, `"v":"fed/1"`, `"v":"fed/2"`), `v is "fed/2"`},
		{"unknown kind", replace(t, posture, `"kind":"posture"`, `"kind":"postures"`), "is not one of"},
		{"bad class", replace(t, posture, `"SECRET"`, `"SECRET-ISH"`), "is not one of"},
		{"bad node", replace(t, posture, `"node":"node_`, `"node":"Node_`), "not a node id"},
		{"bad prev", replace(t, posture, `"prev":"`, `"prev":"A`), "prev must be"},
		{"bad time", replace(t, posture, `12:00:01Z`, `12:00:01.0Z`), "RFC 3339"},
		{"body not object", replace(t, posture, `"body":{"classification":"SECRET"}`, `"body":"SECRET"`), "must be a JSON object"},
		{"null body member", replace(t, posture, `"body":{"classification":"SECRET"}`, `"body":{"classification":null}`), "is not one of"},
		{"big seq", replace(t, posture, `"seq":1`, `"seq":9007199254740994`), "MaxSeq"},
		{"too big", append(bytes.Repeat([]byte(" "), MaxRecordSize), posture...), "MaxRecordSize"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.rec)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Parse = %v, want %q", err, tc.err)
			}
		})
	}
}

func TestNewRecordRefuses(t *testing.T) {
	fx := newFixture(t)
	fb := newFeed(t, fx.a1)
	many := make([]Brain, MaxBrains+1)
	for i := range many {
		many[i] = Brain{ID: "b" + strings.Repeat("x", i%100) + string(rune('a'+i%26)) + string(rune('a'+i/26)), Kind: "domain", Classification: "OFFICIAL"}
	}
	tests := []struct {
		name string
		kind string
		body any
		err  string
	}{
		{"too many brains", KindBrains, &BrainsBody{Brains: many}, "MaxBrains"},
		{"no brains list", KindBrains, &BrainsBody{}, "brains is required"},
		{"duplicate brain", KindBrains, &BrainsBody{Brains: []Brain{{"a", "domain", "OFFICIAL"}, {"a", "domain", "OFFICIAL"}}}, "appears twice"},
		{"long brain id", KindBrains, &BrainsBody{Brains: []Brain{{strings.Repeat("a", MaxIDLen+1), "domain", "OFFICIAL"}}}, "MaxIDLen"},
		{"brain kind", KindBrains, &BrainsBody{Brains: []Brain{{"a", "magic", "OFFICIAL"}}}, "kind"},
		{"endpoint without port", KindEndpoints, &EndpointsBody{API: "host", Fleet: "host:1"}, "not host:port"},
		{"endpoint port 0", KindEndpoints, &EndpointsBody{API: "host:0", Fleet: "host:1"}, "not host:port"},
		{"endpoint port spelling", KindEndpoints, &EndpointsBody{API: "host:080", Fleet: "host:1"}, "not host:port"},
		{"long endpoint", KindEndpoints, &EndpointsBody{API: strings.Repeat("h", MaxAddrLen) + ":1", Fleet: "host:1"}, "MaxAddrLen"},
		{"empty schema", KindAudit, &AuditBody{}, "schema"},
		{"withdraw identity", KindWithdraw, &WithdrawBody{Kind: KindIdentity}, "cannot be withdrawn"},
		{"withdraw brain of posture", KindWithdraw, &WithdrawBody{Kind: KindPosture, Brain: "x"}, "brain must be"},
		{"unknown kind", "gossip", map[string]string{}, "is not one of"},
		{"wrong body", KindLimits, map[string]any{"rpm": 5}, `unknown object member name "rpm"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewRecord(fx.a1.Key, fx.a1.ID(), 1, fb.prev(), tc.kind, tc.body, t0)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("NewRecord = %v, want %q", err, tc.err)
			}
		})
	}
}

func TestHashDomain(t *testing.T) {
	want := sha256.Sum256([]byte("fed/1 record-hash\n{}"))
	if got := Hash([]byte("{}")); !bytes.Equal(got, want[:]) {
		t.Fatalf("Hash = %x, want %x", got, want)
	}
}
