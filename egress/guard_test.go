package egress_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/sios-project/sios/egress"
)

func TestCheck(t *testing.T) {
	g, err := egress.New([]egress.Rule{
		{Host: "127.0.0.1", Port: 11434},
		{Host: "::1", Port: 8080},
		{Host: "[fd00::7]", Port: 8000},
		{Host: "Ollama.Internal", Port: 11434},
		{Host: "localhost.", Port: 9000},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		network string
		address string
		allowed bool
		reason  string // substring of the refusal reason
	}{
		{"allowed IPv4", "tcp", "127.0.0.1:11434", true, ""},
		{"allowed IPv4 on tcp4", "tcp4", "127.0.0.1:11434", true, ""},
		{"allowed IPv6", "tcp", "[::1]:8080", true, ""},
		{"allowed IPv6 long form", "tcp6", "[0:0:0:0:0:0:0:1]:8080", true, ""},
		{"allowed IPv6 rule given with brackets", "tcp", "[fd00::7]:8000", true, ""},
		{"IPv4-mapped IPv6 is IPv4", "tcp", "[::ffff:127.0.0.1]:11434", true, ""},
		{"IPv4-mapped IPv6 wrong port", "tcp", "[::ffff:127.0.0.1]:11435", false, "not an allowed backend or peer"},
		{"hostname case-insensitive", "tcp", "ollama.internal:11434", true, ""},
		{"hostname upper case", "tcp", "OLLAMA.INTERNAL:11434", true, ""},
		{"hostname trailing dot", "tcp", "ollama.internal.:11434", true, ""},
		{"localhost listed without dot", "tcp", "localhost:9000", true, ""},
		{"wrong port", "tcp", "127.0.0.1:11435", false, "not an allowed backend or peer (allowed: "},
		{"unlisted loopback", "tcp", "127.0.0.2:11434", false, "not an allowed backend or peer"},
		{"localhost is not 127.0.0.1", "tcp", "localhost:11434", false, "not an allowed backend or peer"},
		{"127.0.0.1 is not localhost", "tcp", "127.0.0.1:9000", false, "not an allowed backend or peer"},
		{"::1 is not 127.0.0.1", "tcp", "[::1]:11434", false, "not an allowed backend or peer"},
		{"public address", "tcp", "203.0.113.5:443", false, "not an allowed backend or peer"},
		{"public hostname", "tcp", "api.openai.com:443", false, "not an allowed backend or peer"},
		{"octal spelling refused", "tcp", "0177.0.0.1:11434", false, "neither an IP address nor a valid hostname"},
		{"short numeric spelling refused", "tcp", "127.1:11434", false, "neither an IP address nor a valid hostname"},
		{"hex spelling refused", "tcp", "0x7f.1:11434", false, "neither an IP address nor a valid hostname"},
		{"udp refused", "udp", "127.0.0.1:11434", false, `uses network "udp"; only tcp is allowed`},
		{"unix socket refused", "unix", "/run/ollama.sock", false, "only tcp is allowed"},
		{"empty network refused", "", "127.0.0.1:11434", false, "only tcp is allowed"},
		{"missing port", "tcp", "127.0.0.1", false, "not a valid host:port address: missing port in address"},
		{"port zero", "tcp", "127.0.0.1:0", false, "not a number 1–65535"},
		{"port out of range", "tcp", "127.0.0.1:70000", false, "not a number 1–65535"},
		{"named port", "tcp", "127.0.0.1:http", false, "not a number 1–65535"},
		{"empty host", "tcp", ":11434", false, "host is empty"},
		{"garbage", "tcp", "not an address", false, "not a valid host:port address"},
		{"bracketed hostname read as the dialer reads it", "tcp", "[localhost]:9000", true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := g.Check(tc.network, tc.address)
			if tc.allowed {
				if err != nil {
					t.Fatalf("Check(%q, %q) = %v, want allowed", tc.network, tc.address, err)
				}
				return
			}
			var re *egress.RefusedError
			if !errors.As(err, &re) {
				t.Fatalf("Check(%q, %q) = %v, want *RefusedError", tc.network, tc.address, err)
			}
			if re.Address != tc.address || !strings.Contains(re.Reason, tc.reason) {
				t.Fatalf("refusal = %+v, want address %q and reason containing %q", re, tc.address, tc.reason)
			}
			if !strings.HasPrefix(err.Error(), "egress refused: "+tc.address+" ") {
				t.Fatalf("message %q does not start with the address", err)
			}
		})
	}
}

func TestRefusalMessage(t *testing.T) {
	g, err := egress.New([]egress.Rule{{Host: "127.0.0.1", Port: 11434}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := g.Check("tcp", "127.0.0.1:9999").Error()
	want := "egress refused: 127.0.0.1:9999 is not an allowed backend or peer (allowed: 127.0.0.1:11434)"
	if got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}

	empty, _ := egress.New(nil, nil)
	if got := empty.Check("tcp", "127.0.0.1:1").Error(); !strings.Contains(got, "(the allowlist is empty)") {
		t.Fatalf("empty allowlist message: %q", got)
	}

	many, _ := egress.New(nil, nil)
	for p := 1; p <= 20; p++ {
		if err := many.Allow(egress.Rule{Host: "10.0.0.1", Port: p}); err != nil {
			t.Fatal(err)
		}
	}
	if got := many.Check("tcp", "10.0.0.2:1").Error(); !strings.HasSuffix(got, " and 12 more)") {
		t.Fatalf("long allowlist is not capped: %q", got)
	}
}

func TestRuleValidation(t *testing.T) {
	bad := []struct {
		name string
		rule egress.Rule
		want string
	}{
		{"port zero means any: refused", egress.Rule{Host: "127.0.0.1"}, "port 0 is not 1–65535"},
		{"negative port", egress.Rule{Host: "127.0.0.1", Port: -1}, "port -1"},
		{"port too large", egress.Rule{Host: "127.0.0.1", Port: 65536}, "port 65536"},
		{"empty host", egress.Rule{Port: 80}, "host is empty"},
		{"wildcard host", egress.Rule{Host: "*", Port: 80}, "neither an IP address nor a valid hostname"},
		{"host with port", egress.Rule{Host: "127.0.0.1:80", Port: 80}, "neither an IP address nor a valid hostname"},
		{"CIDR", egress.Rule{Host: "10.0.0.0/8", Port: 80}, "neither an IP address nor a valid hostname"},
		{"numeric hostname", egress.Rule{Host: "127.1", Port: 80}, "neither an IP address nor a valid hostname"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := egress.New([]egress.Rule{tc.rule}, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New(%+v) error = %v, want one containing %q", tc.rule, err, tc.want)
			}
			g, _ := egress.New(nil, nil)
			if err := g.Allow(tc.rule); err == nil {
				t.Fatalf("Allow(%+v) succeeded", tc.rule)
			}
			if len(g.Rules()) != 0 {
				t.Fatalf("invalid rule was added: %v", g.Rules())
			}
		})
	}
}

func TestAllowRemove(t *testing.T) {
	g, _ := egress.New(nil, nil)
	peer := egress.Rule{Host: "192.0.2.10", Port: 7946}
	if err := g.Check("tcp", "192.0.2.10:7946"); err == nil {
		t.Fatal("allowed before Allow")
	}
	if err := g.Allow(peer); err != nil {
		t.Fatal(err)
	}
	if err := g.Check("tcp", "192.0.2.10:7946"); err != nil {
		t.Fatalf("after Allow: %v", err)
	}
	// Removing by another spelling of the same destination works.
	if err := g.Remove(egress.Rule{Host: "::ffff:192.0.2.10", Port: 7946}); err != nil {
		t.Fatal(err)
	}
	if err := g.Check("tcp", "192.0.2.10:7946"); err == nil {
		t.Fatal("allowed after Remove")
	}
	if err := g.Remove(peer); err != nil {
		t.Fatalf("removing an absent rule: %v", err)
	}
}

// TestConcurrentAllowRemoveCheck runs under -race: fleet peers come and go while
// dials are being checked.
func TestConcurrentAllowRemoveCheck(t *testing.T) {
	fixed := egress.Rule{Host: "127.0.0.1", Port: 11434}
	g, err := egress.New([]egress.Rule{fixed}, nil)
	if err != nil {
		t.Fatal(err)
	}
	const workers, rounds = 8, 500
	var wg sync.WaitGroup
	errs := make(chan error, workers*2)
	for w := range workers {
		wg.Add(2)
		go func() { // churn: add and remove this worker's peer ports
			defer wg.Done()
			for i := range rounds {
				r := egress.Rule{Host: fmt.Sprintf("10.0.%d.1", w), Port: 1000 + i%50}
				if err := g.Allow(r); err != nil {
					errs <- err
					return
				}
				_ = g.Rules()
				if err := g.Remove(r); err != nil {
					errs <- err
					return
				}
			}
		}()
		go func() { // decide: the fixed rule stays allowed, the unlisted stays refused
			defer wg.Done()
			for i := range rounds {
				if err := g.Check("tcp", "127.0.0.1:11434"); err != nil {
					errs <- err
					return
				}
				if err := g.Check("tcp", "203.0.113.5:443"); err == nil {
					errs <- errors.New("unlisted address allowed")
					return
				}
				_ = g.Check("tcp", fmt.Sprintf("10.0.%d.1:%d", w, 1000+i%50)) // either answer is fine
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := g.Rules(); len(got) != 1 || got[0] != fixed {
		t.Fatalf("after churn the allowlist is %v, want only %v", got, fixed)
	}
}
