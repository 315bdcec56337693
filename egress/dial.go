package egress

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

const (
	dialTimeout = 10 * time.Second
	keepAlive   = 30 * time.Second
)

// DialContext dials network and address if, and only if, Check allows them. A refused
// dial returns a *RefusedError and is reported to onRefuse before any DNS lookup or
// connection attempt. The returned connection is closed by Remove of its rule.
func (g *Guard) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	d, err := g.check(network, address)
	if err != nil {
		g.refuse(network, address, err.(*RefusedError))
		return nil, err
	}
	c, err := g.dialer.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, g: g, d: d}
	g.mu.Lock()
	if _, ok := g.rules[d]; !ok {
		// Removed while we dialled: the connection must not outlive its rule.
		g.mu.Unlock()
		c.Close()
		refused := &RefusedError{Address: address, Reason: "was removed from the allowlist while being dialled"}
		g.refuse(network, address, refused)
		return nil, refused
	}
	if g.conns[d] == nil {
		g.conns[d] = make(map[*trackedConn]bool)
	}
	g.conns[d][tc] = true
	g.mu.Unlock()
	return tc, nil
}

func (g *Guard) refuse(network, address string, e *RefusedError) {
	if g.onRefuse != nil {
		g.onRefuse(Refusal{Network: network, Address: address, Reason: e.Reason})
	}
}

// trackedConn is a connection the Guard dialled; it leaves the Guard's books when
// closed.
type trackedConn struct {
	net.Conn
	g    *Guard
	d    dest
	once sync.Once
	err  error
}

func (c *trackedConn) Close() error {
	c.g.mu.Lock()
	if open := c.g.conns[c.d]; open != nil {
		delete(open, c)
		if len(open) == 0 {
			delete(c.g.conns, c.d)
		}
	}
	c.g.mu.Unlock()
	return c.closeConn()
}

// SyscallConn gives the connection's descriptor (for a non-blocking peek at an idle
// connection), when the dialled connection has one.
func (c *trackedConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.New("the connection has no descriptor")
	}
	return sc.SyscallConn()
}

func (c *trackedConn) closeConn() error {
	c.once.Do(func() { c.err = c.Conn.Close() })
	return c.err
}

// HTTPTransport returns a new *http.Transport that dials only through g. It never uses
// a proxy (environment proxy variables are ignored), speaks HTTP/2 only over TLS
// (negotiated by ALPN, never cleartext h2c) and otherwise HTTP/1.1. Build it once and
// share it: it pools connections.
//
// There is no overall request or response-header timeout: a model server may think
// for minutes before its first byte. Bound each request with its context.
func (g *Guard) HTTPTransport() *http.Transport {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true) // over TLS only; UnencryptedHTTP2 stays off
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           g.DialContext,
		Protocols:             &protocols,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: 1 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		// A node calls one local model server from many requests at once: keep as many
		// connections as requests can be in flight (api.MaxConnections), so that a burst
		// does not close connections only to dial them again (measured at 2,000/s: 4.5 %
		// of the node's CPU went to dialling with 64).
		MaxIdleConns:           1024,
		MaxIdleConnsPerHost:    1024,
		MaxResponseHeaderBytes: 64 << 10,
	}
}
