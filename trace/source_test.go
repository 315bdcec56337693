package trace

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/sios-project/sios/fleet"
)

// answeringFleet is a fleet whose one peer answers every part request with body.
type answeringFleet struct{ body string }

func (f answeringFleet) Peer(node string) (fleet.Peer, bool) {
	return fleet.Peer{NodeID: node, Addr: "127.0.0.1:1", State: fleet.StateAlive}, true
}

func (f answeringFleet) Post(context.Context, string, string, string, []byte) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(strings.NewReader(f.body))}, nil
}

var partRequest = PartRequest{Records: []Ref{{RecordHash: strings.Repeat("a", 64)}}}

// TestPeerPartReadStrictly: a peer's part answer with an unknown, differently cased or
// repeated member is refused naming it; encoding/json dropped it, matched it anyway
// or let the last win.
func TestPeerPartReadStrictly(t *testing.T) {
	const good = `{"node":"n","certificate":{},"checkpoint":"c","records":[{"node":"n","index":1,"entry":"AQI=","inclusion_proof":[]}]}`
	if p, _, err := (FleetSource{answeringFleet{good}}).Part(context.Background(), "n", partRequest); err != nil || p.Checkpoint != "c" {
		t.Fatalf("Part = %+v, %v", p, err)
	}
	for body, want := range map[string]string{
		strings.Replace(good, `"checkpoint"`, `"extra":1,"checkpoint"`, 1): `unknown object member name "extra"`,
		strings.Replace(good, `"checkpoint"`, `"Checkpoint"`, 1):           `unknown object member name "Checkpoint"`,
		strings.Replace(good, `"index":1`, `"index":1,"index":2`, 1):       `duplicate object member name "index"`,
	} {
		if _, _, err := (FleetSource{answeringFleet{body}}).Part(context.Background(), "n", partRequest); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Part of %s = %v, want %q", body, err, want)
		}
	}
}

// FuzzPeerPart: a peer's part answer that FleetSource takes reads the same once
// written back as this node writes parts.
func FuzzPeerPart(f *testing.F) {
	f.Add(`{"node":"n","certificate":{},"checkpoint":"c","records":[{"node":"n","index":1,"entry":"AQI=","inclusion_proof":["ab"]}]}`)
	f.Add(`{"node":"n","node":"m","records":[]}`)
	f.Add(`{"Node":"n","records":null}`)
	f.Fuzz(func(t *testing.T, body string) {
		p, _, err := (FleetSource{answeringFleet{body}}).Part(context.Background(), "n", partRequest)
		if err != nil {
			return
		}
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		again, _, err := (FleetSource{answeringFleet{string(b)}}).Part(context.Background(), "n", partRequest)
		if err != nil || !reflect.DeepEqual(p, again) {
			t.Fatalf("%s read as %+v; written back %s: %+v, %v", body, p, b, again, err)
		}
	})
}
