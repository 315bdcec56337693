package node

import (
	"strings"
	"testing"
)

func TestFleetNetworks(t *testing.T) {
	nets, err := parseNetworks([]string{"10.20.0.0/16", "192.0.2.7", "2001:db8::/32"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr string
		want string // "" allowed, else a phrase of the refusal
	}{
		{"10.20.3.4:7946", ""},
		{"10.21.0.1:7946", "outside the fleet networks"},
		{"192.0.2.7:1", ""},
		{"192.0.2.8:1", "outside"},
		{"[2001:db8::1]:7946", ""},
		{"[2001:db9::1]:7946", "outside"},
		{"[::ffff:10.20.0.1]:7946", ""}, // IPv4-mapped is IPv4
		{"peer.example:7946", "never by a name"},
		{"10.20.0.1", "not an IP address and port"},
	} {
		err := allowedNetwork(nets, tc.addr)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s refused: %v", tc.addr, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want a refusal mentioning %q", tc.addr, err, tc.want)
		}
	}
	for _, bad := range []string{"10.20.0.0/33", "somewhere", ""} {
		if _, err := parseNetworks([]string{bad}); err == nil || !strings.Contains(err.Error(), "CIDR") {
			t.Errorf("%q accepted: %v", bad, err)
		}
	}
}
