package fleet

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// ALPN protocol names: one TCP port carries memberlist's packets and streams and the
// fleet's HTTP API, all inside mutual TLS. Only append to this list.
const (
	ProtoPacket = "sios-gossip-packet/1" // framed memberlist packets, one direction
	ProtoStream = "sios-gossip-stream/1" // one memberlist stream (push/pull, TCP ping)
	ProtoHTTP   = "http/1.1"             // the fleet API (net/http serves only this ALPN name)
)

// Protos lists the ALPN names a fleet listener accepts.
var Protos = []string{ProtoPacket, ProtoStream, ProtoHTTP}

// Transport timings and sizes.
const (
	handshakeTimeout = 10 * time.Second
	packetQueue      = 256             // packets waiting for one peer's connection; more are dropped, like UDP
	packetIdle       = 2 * time.Minute // a packet connection unused this long is closed
	packetWrite      = 5 * time.Second // a packet write that takes longer drops the connection
	packetDial       = 2 * time.Second // dialling for packets gives up after this
	maxHelloLen      = MaxAddrLen      // the sender's advertised address
	maxStreamBacklog = 64              // accepted streams memberlist has not picked up yet
	maxHTTPBacklog   = 256             // accepted HTTP connections not yet served
	packetFrameHdr   = 4               // big-endian length of each packet
	maxPacketSizeErr = "MaxPacketSize" // named in errors
)

// TransportConfig builds a Transport.
type TransportConfig struct {
	// Listen is the TCP address to bind, host:port (port 0 picks one).
	Listen string
	// Advertise is the address peers dial, host:port; default the bound address, which
	// must then not be an unspecified address (0.0.0.0, ::).
	Advertise string
	// ServerTLS answers inbound connections; it must offer Protos and verify clients.
	ServerTLS *tls.Config
	// ClientTLS returns the configuration for dialling node ("" when the node is not
	// known yet, as for a join address) with ALPN name proto.
	ClientTLS func(node, proto string) *tls.Config
	// AllowPeer, if set, decides before any connection is made whether a peer address
	// (host:port to dial, or an inbound connection's remote address) may be used; an
	// error refuses it. It is called often and must be quick.
	AllowPeer func(addr string) error
	Logger    *slog.Logger
}

// Transport is a memberlist.NodeAwareTransport over mutual TLS on one TCP port. Packets
// (SWIM probes, gossip) travel as length-prefixed frames on a long-lived connection per
// peer and direction; a packet that cannot be sent promptly is dropped, which memberlist
// expects of a packet transport. HTTP connections on the same port are handed to
// HTTPListener. All gossip is encrypted and authenticated by TLS 1.3 with the node
// identities, so no shared gossip key exists to leak.
type Transport struct {
	cfg       TransportConfig
	serverTLS atomic.Pointer[tls.Config] // replaced when the certificate is renewed
	ln        net.Listener
	advertise *net.TCPAddr
	log       *slog.Logger

	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	httpLn   *connListener

	mu      sync.Mutex
	senders map[string]*sender    // guarded by mu; by address
	conns   map[net.Conn]struct{} // guarded by mu; accepted connections the transport still owns
	closed  bool                  // guarded by mu

	done chan struct{}
	wg   sync.WaitGroup
}

var _ memberlist.NodeAwareTransport = (*Transport)(nil)

// NewTransport binds the listener and starts accepting.
func NewTransport(cfg TransportConfig) (*Transport, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("fleet listen %s: %v", cfg.Listen, err)
	}
	bound := ln.Addr().(*net.TCPAddr)
	adv := bound
	if cfg.Advertise != "" {
		a, err := net.ResolveTCPAddr("tcp", cfg.Advertise)
		if err != nil || a.Port == 0 {
			ln.Close()
			return nil, fmt.Errorf("fleet advertise address %q is not host:port", cfg.Advertise)
		}
		adv = a
	}
	if adv.IP == nil || adv.IP.IsUnspecified() {
		ln.Close()
		return nil, fmt.Errorf("fleet listen address %s is unspecified: set an address peers can reach (--fleet-advertise)", bound)
	}
	t := &Transport{
		cfg: cfg, ln: ln, advertise: adv, log: cfg.Logger,
		packetCh: make(chan *memberlist.Packet, packetQueue),
		streamCh: make(chan net.Conn, maxStreamBacklog),
		httpLn:   newConnListener(bound, maxHTTPBacklog),
		senders:  map[string]*sender{},
		conns:    map[net.Conn]struct{}{},
		done:     make(chan struct{}),
	}
	t.serverTLS.Store(cfg.ServerTLS)
	t.wg.Add(1)
	go t.accept()
	return t, nil
}

// SetServerTLS replaces the configuration inbound connections are answered with, as
// when the node's TLS certificate is renewed.
func (t *Transport) SetServerTLS(c *tls.Config) { t.serverTLS.Store(c) }

// Addr is the address peers dial.
func (t *Transport) Addr() string { return t.advertise.String() }

// HTTPListener yields the inbound connections that negotiated ProtoHTTP, already
// handshaken: r.TLS in a handler holds the verified peer's certificate.
func (t *Transport) HTTPListener() net.Listener { return t.httpLn }

// DialHTTP opens a connection for the fleet API to node at addr (node "" accepts any
// trusted peer).
func (t *Transport) DialHTTP(ctx context.Context, node, addr string) (net.Conn, error) {
	return t.dial(ctx, node, addr, ProtoHTTP)
}

func (t *Transport) dial(ctx context.Context, node, addr, proto string) (*tls.Conn, error) {
	if t.cfg.AllowPeer != nil {
		if err := t.cfg.AllowPeer(addr); err != nil {
			// A dial error, as if the peer were unreachable: no connection was attempted.
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: err}
		}
	}
	// Connections leave from the listening address, so that peers see the address
	// they know this node by; not when the node advertises another (NAT) address, nor
	// across the loopback boundary, which a source address cannot cross.
	d := &net.Dialer{}
	if ip := t.ln.Addr().(*net.TCPAddr).IP; t.cfg.Advertise == "" && !ip.IsUnspecified() && ip.IsLoopback() == isLoopbackAddr(addr) {
		d.LocalAddr = &net.TCPAddr{IP: ip}
	}
	td := &tls.Dialer{NetDialer: d, Config: t.cfg.ClientTLS(node, proto)}
	c, err := td.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := c.(*tls.Conn)
	if got := tc.ConnectionState().NegotiatedProtocol; got != proto {
		tc.Close()
		return nil, fmt.Errorf("fleet peer %s did not agree to %s (got %q)", addr, proto, got)
	}
	return tc, nil
}

func isLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (t *Transport) accept() {
	defer t.wg.Done()
	for {
		c, err := t.ln.Accept()
		if err != nil {
			select {
			case <-t.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			t.log.Error("fleet accept", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if t.cfg.AllowPeer != nil {
			if err := t.cfg.AllowPeer(c.RemoteAddr().String()); err != nil {
				t.log.Debug("fleet connection refused", "remote", c.RemoteAddr().String(), "err", err)
				c.Close()
				continue
			}
		}
		if !t.track(c) {
			c.Close()
			return
		}
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			t.serveConn(c)
		}()
	}
}

// track registers an accepted connection so that Shutdown can close it; false once
// the transport is shut down.
func (t *Transport) track(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.conns[c] = struct{}{}
	return true
}

// untrack hands a connection over (to memberlist or the HTTP server) or forgets a
// closed one.
func (t *Transport) untrack(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
}

// serveConn completes the handshake (the server config verifies the peer) and routes
// the connection by its ALPN name.
func (t *Transport) serveConn(c net.Conn) {
	tc := tls.Server(c, t.serverTLS.Load())
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		t.log.Debug("fleet handshake refused", "remote", c.RemoteAddr().String(), "err", err)
		c.Close()
		t.untrack(c)
		return
	}
	switch tc.ConnectionState().NegotiatedProtocol {
	case ProtoPacket:
		t.readPackets(tc)
		t.untrack(c)
	case ProtoStream:
		// Until memberlist takes it, the stream is the transport's to close (Shutdown
		// drains streamCh); after that it is memberlist's.
		t.untrack(c)
		select {
		case t.streamCh <- tc:
		case <-t.done:
			tc.Close()
		}
	case ProtoHTTP:
		t.untrack(c)
		if !t.httpLn.put(tc) {
			tc.Close()
		}
	default:
		tc.Close()
		t.untrack(c)
	}
}

// readPackets reads the sender's advertised address, then frames, until the
// connection ends.
func (t *Transport) readPackets(c *tls.Conn) {
	defer c.Close()
	r := bufio.NewReaderSize(c, 64<<10)
	hello, err := readFrame(r, maxHelloLen)
	if err != nil {
		return
	}
	// An IP literal and port only: a name here would make this node resolve whatever a
	// peer wrote.
	ap, err := netip.ParseAddrPort(string(hello))
	if err != nil {
		return
	}
	from := net.TCPAddrFromAddrPort(ap)
	for {
		buf, err := readFrame(r, MaxPacketSize)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				t.log.Debug("fleet packet connection", "from", from.String(), "err", err)
			}
			return
		}
		p := &memberlist.Packet{Buf: buf, From: from, Timestamp: time.Now()}
		select {
		case t.packetCh <- p:
		case <-t.done:
			return
		}
	}
}

// readFrame reads one length-prefixed frame of at most max bytes.
func readFrame(r io.Reader, max int) ([]byte, error) {
	var hdr [packetFrameHdr]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > uint32(max) {
		return nil, fmt.Errorf("frame of %d bytes is more than the limit of %d (%s)", n, max, maxPacketSizeErr)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

func appendFrame(dst, b []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(b)))
	return append(dst, b...)
}

// FinalAdvertiseAddr implements memberlist.Transport.
func (t *Transport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	return t.advertise.IP, t.advertise.Port, nil
}

// WriteTo implements memberlist.Transport.
func (t *Transport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress implements memberlist.NodeAwareTransport: the packet is queued for the
// peer's connection and dropped if the queue is full.
func (t *Transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if len(b) > MaxPacketSize {
		return time.Time{}, fmt.Errorf("packet of %d bytes is more than the limit of %d (%s)", len(b), MaxPacketSize, maxPacketSizeErr)
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return time.Time{}, net.ErrClosed
	}
	s := t.senders[a.Addr]
	if s == nil || (a.Name != "" && s.node != a.Name) {
		if s != nil {
			s.stop()
		}
		s = &sender{t: t, addr: a.Addr, node: a.Name, q: make(chan []byte, packetQueue), quit: make(chan struct{})}
		t.senders[a.Addr] = s
		t.wg.Add(1)
		go s.run()
	}
	t.mu.Unlock()
	select {
	case s.q <- append([]byte(nil), b...):
	default:
		t.log.Debug("fleet packet dropped: queue full", "to", a.Addr)
	}
	return time.Now(), nil
}

// sender owns the packet connection to one peer address.
type sender struct {
	t          *Transport
	addr, node string
	q          chan []byte
	quit       chan struct{}
	once       sync.Once
}

func (s *sender) stop() { s.once.Do(func() { close(s.quit) }) }

func (s *sender) run() {
	defer s.t.wg.Done()
	var c *tls.Conn
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	idle := time.NewTimer(packetIdle)
	defer idle.Stop()
	var frame []byte
	for {
		select {
		case <-s.quit:
			return
		case <-s.t.done:
			return
		case <-idle.C:
			// Unused for a while: close, and leave the map unless packets raced in.
			s.t.mu.Lock()
			if len(s.q) == 0 && s.t.senders[s.addr] == s {
				delete(s.t.senders, s.addr)
				s.t.mu.Unlock()
				return
			}
			s.t.mu.Unlock()
			idle.Reset(packetIdle)
			continue
		case b := <-s.q:
			idle.Reset(packetIdle)
			if c == nil {
				ctx, cancel := context.WithTimeout(context.Background(), packetDial)
				var err error
				c, err = s.t.dial(ctx, s.node, s.addr, ProtoPacket)
				cancel()
				if err != nil {
					s.t.log.Debug("fleet packet dial", "to", s.addr, "err", err)
					c = nil
					s.drain()
					continue
				}
				frame = appendFrame(frame[:0], []byte(s.t.Addr()))
				if !s.write(c, frame) {
					c.Close()
					c = nil
					continue
				}
			}
			frame = appendFrame(frame[:0], b)
			// Send what else is queued in the same write.
			for more := true; more && len(frame) < 256<<10; {
				select {
				case b := <-s.q:
					frame = appendFrame(frame, b)
				default:
					more = false
				}
			}
			if !s.write(c, frame) {
				c.Close()
				c = nil
			}
		}
	}
}

// drain drops what is queued: the peer is unreachable now, and memberlist's probes
// and gossip are only useful fresh.
func (s *sender) drain() {
	for {
		select {
		case <-s.q:
		default:
			return
		}
	}
}

func (s *sender) write(c *tls.Conn, b []byte) bool {
	c.SetWriteDeadline(time.Now().Add(packetWrite))
	if _, err := c.Write(b); err != nil {
		s.t.log.Debug("fleet packet write", "to", s.addr, "err", err)
		return false
	}
	return true
}

// PacketCh implements memberlist.Transport.
func (t *Transport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// DialTimeout implements memberlist.Transport.
func (t *Transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport: a stream to the peer,
// which must be the node named (when a name is given).
func (t *Transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := t.dial(ctx, a.Name, a.Addr, ProtoStream)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// StreamCh implements memberlist.Transport.
func (t *Transport) StreamCh() <-chan net.Conn { return t.streamCh }

// Shutdown implements memberlist.Transport: it stops listening and closes every
// connection it owns. HTTP connections already handed out belong to their server.
func (t *Transport) Shutdown() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.mu.Unlock()
	close(t.done)
	err := t.ln.Close()
	t.httpLn.Close()
	t.mu.Lock()
	for c := range t.conns {
		c.Close() // handshaking and packet connections; their goroutines then end
	}
	t.mu.Unlock()
	t.wg.Wait()
	for { // streams memberlist never picked up
		select {
		case c := <-t.streamCh:
			c.Close()
		default:
			return err
		}
	}
}

// connListener is a net.Listener fed with connections accepted elsewhere.
type connListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newConnListener(addr net.Addr, backlog int) *connListener {
	return &connListener{addr: addr, ch: make(chan net.Conn, backlog), done: make(chan struct{})}
}

// put hands c to Accept; false when the listener is closed or its backlog full.
func (l *connListener) put(c net.Conn) bool {
	select {
	case <-l.done:
		return false
	default:
	}
	select {
	case l.ch <- c:
		return true
	default:
		return false
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *connListener) Addr() net.Addr { return l.addr }

// hostPort joins an IP and port.
func hostPort(ip net.IP, port int) string { return net.JoinHostPort(ip.String(), strconv.Itoa(port)) }
