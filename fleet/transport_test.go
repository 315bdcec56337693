package fleet

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/sios-project/sios/identity"
)

// newTestTransport starts a Transport for n on 127.0.0.1 that trusts trust; the test's
// cleanup shuts it down.
func newTestTransport(t *testing.T, n *identity.Node, trust Trust) *Transport {
	t.Helper()
	cert := mustTLSCert(t, n, time.Now())
	tr, err := NewTransport(TransportConfig{
		Listen:    "127.0.0.1:0",
		ServerTLS: ServerTLSConfig(cert, trustOf(trust), Protos, nil),
		ClientTLS: func(node, proto string) *tls.Config {
			return ClientTLSConfig(cert, trustOf(trust), []string{proto}, node)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Shutdown() })
	return tr
}

// recvPacket waits for the next packet on tr.
func recvPacket(t *testing.T, tr *Transport) *memberlist.Packet {
	t.Helper()
	select {
	case p := <-tr.PacketCh():
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("no packet arrived within 10 s")
		return nil
	}
}

// dialPackets opens a raw packet connection to tr as node n.
func dialPackets(t *testing.T, tr *Transport, n *identity.Node, trust Trust) *tls.Conn {
	t.Helper()
	cfg := ClientTLSConfig(mustTLSCert(t, n, time.Now()), trustOf(trust), []string{ProtoPacket}, "")
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", tr.Addr(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if got := c.ConnectionState().NegotiatedProtocol; got != ProtoPacket {
		t.Fatalf("negotiated %q, want %q", got, ProtoPacket)
	}
	return c
}

func TestTransportRefusesOversizedFrame(t *testing.T) {
	fx := newFixture(t)
	tr := newTestTransport(t, fx.a1, fx.both)
	c := dialPackets(t, tr, fx.a2, fx.both)
	const from = "127.0.0.1:7946"
	if _, err := c.Write(appendFrame(appendFrame(nil, []byte(from)), []byte("ping"))); err != nil {
		t.Fatal(err)
	}
	if p := recvPacket(t, tr); string(p.Buf) != "ping" || p.From.String() != from {
		t.Fatalf("got packet %q from %v, want %q from %s", p.Buf, p.From, "ping", from)
	}

	// A header announcing one byte too many: the transport must hang up without
	// reading (or allocating) the body.
	var hdr [packetFrameHdr]byte
	binary.BigEndian.PutUint32(hdr[:], MaxPacketSize+1)
	if _, err := c.Write(hdr[:]); err != nil {
		t.Fatal(err)
	}
	n, err := c.Read(make([]byte, 1))
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection still open after an oversized frame header (read %d bytes, err %v)", n, err)
	}
	// The reader hands packets over before it hangs up, so any would be queued now.
	select {
	case p := <-tr.PacketCh():
		t.Fatalf("a packet of %d bytes reached PacketCh after the oversized header", len(p.Buf))
	default:
	}

	// The sending side refuses an oversized packet before it reaches the wire.
	if _, err := tr.WriteToAddress(make([]byte, MaxPacketSize+1), memberlist.Address{Addr: tr.Addr()}); err == nil {
		t.Error("WriteToAddress accepted a packet of MaxPacketSize+1 bytes")
	}
}

func TestTransportPacketsAndStreams(t *testing.T) {
	fx := newFixture(t)
	ta := newTestTransport(t, fx.a1, fx.onlyA)
	tb := newTestTransport(t, fx.a2, fx.onlyA)

	want := [][]byte{[]byte("one"), {}, bytes.Repeat([]byte{0xa5}, MaxPacketSize), []byte("four")}
	for _, b := range want {
		if _, err := ta.WriteToAddress(b, memberlist.Address{Addr: tb.Addr(), Name: fx.a2.ID()}); err != nil {
			t.Fatal(err)
		}
	}
	for i, w := range want {
		p := recvPacket(t, tb)
		if !bytes.Equal(p.Buf, w) {
			t.Fatalf("packet %d: got %d bytes, want %d (%.8q)", i, len(p.Buf), len(w), w)
		}
		if p.From.String() != ta.Addr() {
			t.Errorf("packet %d from %v, want the sender's address %s", i, p.From, ta.Addr())
		}
	}
	// And back, on a connection of b's own.
	if _, err := tb.WriteTo([]byte("pong"), ta.Addr()); err != nil {
		t.Fatal(err)
	}
	if p := recvPacket(t, ta); string(p.Buf) != "pong" || p.From.String() != tb.Addr() {
		t.Errorf("got %q from %v, want %q from %s", p.Buf, p.From, "pong", tb.Addr())
	}

	// A stream to the right node arrives on its StreamCh and carries bytes both ways.
	c, err := ta.DialAddressTimeout(memberlist.Address{Addr: tb.Addr(), Name: fx.a2.ID()}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := recvStream(t, tb)
	defer s.Close()
	if s.RemoteAddr().String() != c.LocalAddr().String() {
		t.Fatalf("stream from %v, want the one dialled from %v", s.RemoteAddr(), c.LocalAddr())
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	s.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("push")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "push" {
		t.Fatalf("stream read %q, %v", buf, err)
	}
	if _, err := s.Write([]byte("pull")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "pull" {
		t.Fatalf("stream read back %q, %v", buf, err)
	}

	// A stream to the address but naming another node fails, and nothing arrives.
	if c, err := ta.DialAddressTimeout(memberlist.Address{Addr: tb.Addr(), Name: fx.b1.ID()}, 10*time.Second); !errors.Is(err, ErrWrongPeer) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("dialling a2's address for b1: %v, want ErrWrongPeer", err)
	}
	c2, err := ta.DialAddressTimeout(memberlist.Address{Addr: tb.Addr(), Name: fx.a2.ID()}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	s2 := recvStream(t, tb)
	defer s2.Close()
	if s2.RemoteAddr().String() != c2.LocalAddr().String() {
		t.Errorf("the refused stream from %v reached StreamCh", s2.RemoteAddr())
	}
}

// After Shutdown no connection the transport accepted may stay open: a peer in the
// middle of a push/pull or sending probes must learn at once that this node is gone,
// as it would from a process that exited, not when its own timeout (memberlist's
// TCPTimeout, 10 s) expires.
func TestTransportShutdownClosesConnections(t *testing.T) {
	fx := newFixture(t)
	closed := func(t *testing.T, c net.Conn) {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		_, err := c.Read(make([]byte, 1))
		if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("connection still open 3 s after Shutdown (read: %v)", err)
		}
	}
	t.Run("stream not yet taken", func(t *testing.T) {
		ta := newTestTransport(t, fx.a1, fx.onlyA)
		tb := newTestTransport(t, fx.a2, fx.onlyA)
		c, err := ta.DialAddressTimeout(memberlist.Address{Addr: tb.Addr(), Name: fx.a2.ID()}, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// memberlist stops taking streams when it shuts down; one may be queued then.
		for deadline := time.Now().Add(10 * time.Second); len(tb.streamCh) == 0; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the stream was not queued on StreamCh within 10 s")
			}
		}
		tb.Shutdown()
		closed(t, c)
	})
	t.Run("packet connection", func(t *testing.T) {
		tb := newTestTransport(t, fx.a2, fx.onlyA)
		c := dialPackets(t, tb, fx.a1, fx.onlyA)
		if _, err := c.Write(appendFrame(appendFrame(nil, []byte("127.0.0.1:7946")), []byte("ping"))); err != nil {
			t.Fatal(err)
		}
		recvPacket(t, tb)
		tb.Shutdown()
		closed(t, c)
	})
}

func recvStream(t *testing.T, tr *Transport) net.Conn {
	t.Helper()
	select {
	case s := <-tr.StreamCh():
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no stream arrived within 10 s")
		return nil
	}
}

// FuzzReadFrame: readFrame never panics, never returns more than max bytes, and what
// it returns is exactly the frames appendFrame would have written.
func FuzzReadFrame(f *testing.F) {
	f.Add(appendFrame(nil, []byte("127.0.0.1:7946")), uint32(MaxAddrLen))
	f.Add(appendFrame(appendFrame(nil, []byte("a")), []byte("bc")), uint32(2))
	f.Add(appendFrame(nil, []byte("abc")), uint32(2))
	f.Add([]byte{0, 0, 0, 0}, uint32(0))
	f.Add([]byte{0, 0, 1}, uint32(10))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3}, uint32(MaxPacketSize))
	f.Add(binary.BigEndian.AppendUint32(nil, MaxPacketSize+1), uint32(MaxPacketSize))
	f.Fuzz(func(t *testing.T, data []byte, max uint32) {
		limit := int(max % (MaxPacketSize + 2))
		r := bytes.NewReader(data)
		var again []byte
		for {
			b, err := readFrame(r, limit)
			if err != nil {
				if b != nil {
					t.Fatalf("error %v with %d bytes", err, len(b))
				}
				break
			}
			if len(b) > limit {
				t.Fatalf("frame of %d bytes, more than the limit of %d", len(b), limit)
			}
			again = appendFrame(again, b)
			if consumed := len(data) - r.Len(); !bytes.Equal(again, data[:consumed]) {
				t.Fatalf("frames re-encode to %x, the input read was %x", again, data[:consumed])
			}
		}
	})
}
