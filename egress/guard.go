// Package egress is the one dialer through which every outbound connection of a node
// goes.
//
// A Guard holds an allowlist of exact destinations (host and port): the configured
// model backends and the trusted fleet peers. It guarantees:
//
//   - A destination is allowed only if its host and port match a listed Rule exactly.
//     IP literals are compared after normalisation (brackets dropped, IPv4-mapped IPv6
//     treated as IPv4); hostnames are compared case-insensitively and are never
//     resolved to decide: "localhost" is allowed only if "localhost" is listed, and
//     127.0.0.1 only if 127.0.0.1 is listed. A rule always names one port.
//   - Only TCP (tcp, tcp4, tcp6) is ever dialled.
//   - Check is a pure decision: no DNS, no I/O. DialContext decides first and refuses
//     before any DNS lookup or connection attempt, reporting the refusal to the
//     Guard's onRefuse callback so the node can audit it.
//   - Remove cuts off a destination: new dials are refused and the connections the
//     Guard dialled to it are closed.
//
// HTTPTransport gives an *http.Transport that dials only through the Guard and never
// uses a proxy from the environment.
//
// A hostname rule trusts whatever that name resolves to when it is dialled; list IP
// literals where the resolver is not under the operator's control.
package egress

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Rule allows one destination: an exact host and port.
type Rule struct {
	// Host is an IP literal (IPv6 with or without brackets) or a hostname.
	Host string
	// Port is 1–65535; there is no "any port".
	Port int
}

// String gives the rule as host:port.
func (r Rule) String() string {
	return net.JoinHostPort(strings.TrimSuffix(strings.TrimPrefix(r.Host, "["), "]"), strconv.Itoa(r.Port))
}

// Refusal describes a dial the Guard refused; it is what onRefuse receives.
type Refusal struct {
	Network string // as passed to DialContext, e.g. "tcp"
	Address string // as passed to DialContext, e.g. "203.0.113.5:443"
	Reason  string // a phrase that follows the address, e.g. "is not an allowed backend or peer (…)"
}

// RefusedError is returned by Check and DialContext for a destination the Guard does
// not allow. Test for it with errors.As.
type RefusedError struct {
	Address string
	// Reason is a phrase that reads after the address: "is not an allowed backend or
	// peer (allowed: 127.0.0.1:11434)", "uses network udp; only tcp is allowed".
	Reason string
}

func (e *RefusedError) Error() string {
	return "egress refused: " + e.Address + " " + e.Reason
}

// maxListedInReason caps how many allowed destinations a refusal names.
const maxListedInReason = 8

// Guard decides and makes outbound connections. Its methods are safe for concurrent
// use.
type Guard struct {
	onRefuse func(Refusal)
	dialer   net.Dialer

	mu    sync.RWMutex
	rules map[dest]Rule                  // guarded by mu; the allowlist by normalised destination
	conns map[dest]map[*trackedConn]bool // guarded by mu; open connections per destination
}

// dest is a normalised destination: an IP's canonical text (IPv4-mapped unmapped) or a
// lower-case hostname without a trailing dot, and a port.
type dest struct {
	host string
	port uint16
}

// New builds a Guard allowing rules. onRefuse, if not nil, is called synchronously on
// the dialling goroutine for every dial DialContext refuses (not for Check); it must
// be safe for concurrent use and should return quickly.
func New(rules []Rule, onRefuse func(Refusal)) (*Guard, error) {
	g := &Guard{
		onRefuse: onRefuse,
		dialer:   net.Dialer{Timeout: dialTimeout, KeepAlive: keepAlive},
		rules:    make(map[dest]Rule),
		conns:    make(map[dest]map[*trackedConn]bool),
	}
	for _, r := range rules {
		if err := g.Allow(r); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// Allow adds r to the allowlist. It fails, naming the rule, if the host is neither an
// IP literal nor a valid hostname or the port is not 1–65535.
func (g *Guard) Allow(r Rule) error {
	d, err := ruleDest(r)
	if err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.rules[d] = r
	return nil
}

// Remove takes r off the allowlist and closes the connections this Guard dialled to
// it. Removing a rule that is not listed does nothing; an invalid rule is an error.
func (g *Guard) Remove(r Rule) error {
	d, err := ruleDest(r)
	if err != nil {
		return err
	}
	g.mu.Lock()
	delete(g.rules, d)
	open := g.conns[d]
	delete(g.conns, d)
	g.mu.Unlock()
	for c := range open {
		c.closeConn()
	}
	return nil
}

// Rules returns the allowlist in a stable order.
func (g *Guard) Rules() []Rule {
	g.mu.RLock()
	out := make([]Rule, 0, len(g.rules))
	for _, r := range g.rules {
		out = append(out, r)
	}
	g.mu.RUnlock()
	slices.SortFunc(out, func(a, b Rule) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// Check decides whether a dial of network and address would be allowed. It is a pure
// function of the allowlist and its arguments: no DNS, no I/O. The error, if any, is a
// *RefusedError.
func (g *Guard) Check(network, address string) error {
	_, err := g.check(network, address)
	return err
}

func (g *Guard) check(network, address string) (dest, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return dest{}, &RefusedError{Address: address, Reason: fmt.Sprintf("uses network %q; only tcp is allowed", network)}
	}
	d, err := parseAddress(address)
	if err != nil {
		return dest{}, &RefusedError{Address: address, Reason: "is not a valid host:port address: " + err.Error()}
	}
	g.mu.RLock()
	_, ok := g.rules[d]
	g.mu.RUnlock()
	if !ok {
		return dest{}, &RefusedError{Address: address, Reason: "is not an allowed backend or peer (" + g.allowedSummary() + ")"}
	}
	return d, nil
}

// allowedSummary names the allowlist for a refusal message, capped at
// maxListedInReason entries.
func (g *Guard) allowedSummary() string {
	rules := g.Rules()
	if len(rules) == 0 {
		return "the allowlist is empty"
	}
	names := make([]string, 0, min(len(rules), maxListedInReason))
	for _, r := range rules[:min(len(rules), maxListedInReason)] {
		names = append(names, r.String())
	}
	s := "allowed: " + strings.Join(names, ", ")
	if more := len(rules) - len(names); more > 0 {
		s += fmt.Sprintf(" and %d more", more)
	}
	return s
}

func ruleDest(r Rule) (dest, error) {
	if r.Port < 1 || r.Port > 65535 {
		return dest{}, fmt.Errorf("egress rule %q: port %d is not 1–65535 (a rule names exactly one port)", r.Host, r.Port)
	}
	host, err := normHost(r.Host)
	if err != nil {
		return dest{}, fmt.Errorf("egress rule %q: %v", r.Host, err)
	}
	return dest{host: host, port: uint16(r.Port)}, nil
}

// parseAddress normalises a dial address "host:port" without any lookup.
func parseAddress(address string) (dest, error) {
	h, p, err := net.SplitHostPort(address)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return dest{}, errors.New(ae.Err)
		}
		return dest{}, err
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil || port == 0 {
		return dest{}, fmt.Errorf("port %q is not a number 1–65535", p)
	}
	host, err := normHost(h)
	if err != nil {
		return dest{}, err
	}
	return dest{host: host, port: uint16(port)}, nil
}

// normHost gives the comparable form of a host: an IP literal's canonical text
// (IPv4-mapped IPv6 as IPv4, zone kept) or a lower-case hostname without a trailing
// dot.
func normHost(h string) (string, error) {
	bracketed := strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]")
	if bracketed {
		h = h[1 : len(h)-1]
	}
	if a, err := netip.ParseAddr(h); err == nil {
		return a.Unmap().String(), nil
	}
	if bracketed {
		return "", fmt.Errorf("[%s] is not an IP address", h)
	}
	name := strings.TrimSuffix(h, ".")
	if !validHostname(name) {
		if name == "" {
			return "", errors.New("host is empty")
		}
		return "", fmt.Errorf("host %q is neither an IP address nor a valid hostname", h)
	}
	return strings.ToLower(name), nil
}

// validHostname accepts dot-separated labels of letters, digits, '-' and '_' (at most
// 63 bytes each, 253 in all) whose last label is not a decimal or 0x-hex number, so
// that no allowed hostname is one a C resolver would read as a numeric address
// ("127.1", "0x7f.1").
func validHostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	labels := strings.Split(s, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	last := labels[len(labels)-1]
	if strings.Trim(last, "0123456789") == "" {
		return false
	}
	if len(last) > 2 && (last[:2] == "0x" || last[:2] == "0X") && strings.Trim(last[2:], "0123456789abcdefABCDEF") == "" {
		return false
	}
	return true
}
