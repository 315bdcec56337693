package replication

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// TestReplicationMessagesStrict: notify messages and consistency answers, as a node
// writes them (encoding/json, and the fleet API's encoder with its trailing newline),
// read back the same; a repeated, differently cased or unknown member is refused
// naming it, where encoding/json would let the last win, match it anyway or skip it.
func TestReplicationMessagesStrict(t *testing.T) {
	cp := "node_x/log\n12\nAAAA\n\n— node_x <sig>\n"
	sent := &NotifyMsg{Checkpoint: cp, Size: 12, Root: "ab", State: "current", Cosignature: "— replica sig\n"}
	w := httptest.NewRecorder()
	json.NewEncoder(w).Encode(sent) // as fleetapi's writeJSON writes it
	got, err := readNotify(w.Body)
	if err != nil || !reflect.DeepEqual(got, sent) {
		t.Fatalf("notify round trip: %+v, %v", got, err)
	}
	body, _ := json.Marshal(NotifyMsg{Checkpoint: cp})
	if req, err := parseNotify(body); err != nil || req.Checkpoint != cp {
		t.Fatalf("notify request round trip: %+v, %v", req, err)
	}
	ans := &ConsistencyMsg{Checkpoint: cp, Proof: [][]byte{bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)}}
	b, _ := json.Marshal(ans)
	if m, err := parseConsistency(b); err != nil || !reflect.DeepEqual(m, ans) {
		t.Fatalf("consistency round trip: %+v, %v", m, err)
	}

	for _, c := range []struct{ name, in, want string }{
		{"repeated member", `{"checkpoint":"a","checkpoint":"b"}`, `duplicate object member name "checkpoint"`},
		{"differently cased member", `{"Checkpoint":"a"}`, `unknown object member name "Checkpoint"`},
		{"unknown member", `{"checkpoint":"a","note":1}`, `unknown object member name "note"`},
		{"data after the document", `{"checkpoint":"a"}{}`, "trailing data"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := parseNotify([]byte(c.in)); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("parseNotify = %v, want an error saying %q", err, c.want)
			}
			if _, err := parseConsistency([]byte(c.in)); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("parseConsistency = %v, want an error saying %q", err, c.want)
			}
		})
	}
	big := `{"checkpoint":"` + strings.Repeat("x", MaxNotify) + `"}`
	if _, err := readNotify(strings.NewReader(big)); err == nil || !strings.Contains(err.Error(), "(MaxNotify)") {
		t.Errorf("an answer over MaxNotify: %v", err)
	}
	if _, err := parseConsistency([]byte(big)); err == nil || !strings.Contains(err.Error(), "(MaxProofAnswer)") {
		t.Errorf("an answer over MaxProofAnswer: %v", err)
	}
}

// FuzzReplicationMessages: whatever parseNotify or parseConsistency accepts reads the
// same once written back.
func FuzzReplicationMessages(f *testing.F) {
	f.Add([]byte(`{"checkpoint":"o\n1\nAA==\n","size":1,"root":"ab","state":"current","cosignature":"— r x\n"}`))
	f.Add([]byte(`{"checkpoint":"o\n1\n","proof":["AAEC","AwQF"]}`))
	f.Add([]byte(`{"size":1,"Size":2}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		if m, err := parseNotify(in); err == nil {
			b, _ := json.Marshal(m)
			m2, err := parseNotify(b)
			if err != nil || !reflect.DeepEqual(m, m2) {
				t.Fatalf("notify %s written back does not read the same: %v", in, err)
			}
		}
		if m, err := parseConsistency(in); err == nil {
			b, _ := json.Marshal(m)
			m2, err := parseConsistency(b)
			if err != nil || m.Checkpoint != m2.Checkpoint || len(m.Proof) != len(m2.Proof) {
				t.Fatalf("consistency %s written back does not read the same: %v", in, err)
			}
		}
	})
}
