package backend_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sios-project/sios/backend"
	"github.com/sios-project/sios/egress"
)

// rawServer is a model server written byte by byte: for each request it reads, it
// writes what answer returns for that connection's n-th request (0-based), then keeps
// the connection open unless closeAfter says otherwise. It counts connections.
type rawServer struct {
	ln     net.Listener
	conns  atomic.Int64
	answer func(n int) (reply string, closeAfter bool)
	wg     sync.WaitGroup
}

func newRawServer(t testing.TB, answer func(n int) (string, bool)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln, answer: answer}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for n := 0; ; n++ {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					reply, closeAfter := s.answer(n)
					if _, err := io.WriteString(c, reply); err != nil || closeAfter {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *rawServer) url() string { return "http://" + s.ln.Addr().String() }

// transportFor is a Transport dialling through an egress guard that allows s alone.
func transportFor(t testing.TB, s *rawServer) *backend.Transport {
	t.Helper()
	g, err := egress.New([]egress.Rule{{Host: "127.0.0.1", Port: s.ln.Addr().(*net.TCPAddr).Port}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := &backend.Transport{Dial: g.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

const okReply = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
const chunkedReply = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n" +
	"6\r\ndata: \r\n3\r\nab\n\r\n0\r\n\r\n"

// post sends one request through tr and returns the status and the whole body.
func post(ctx context.Context, tr http.RoundTripper, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/chat/completions", strings.NewReader(`{"model":"m"}`))
	if err != nil {
		return 0, "", err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestTransportReusesConnections(t *testing.T) {
	for _, c := range []struct{ name, reply, body string }{
		{"content-length", okReply, "{}"},
		{"chunked", chunkedReply, "data: ab\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newRawServer(t, func(int) (string, bool) { return c.reply, false })
			tr := transportFor(t, s)
			for i := range 20 {
				code, body, err := post(context.Background(), tr, s.url())
				if err != nil || code != 200 || body != c.body {
					t.Fatalf("request %d: %d %q %v", i, code, body, err)
				}
			}
			if n := s.conns.Load(); n != 1 {
				t.Fatalf("20 requests used %d connections, want 1", n)
			}
		})
	}
}

// Connections that cannot be reused are not: the server said close, closed after
// its answer without saying so, answered without a length, or sent bytes after its
// answer; or the caller stopped reading before the end.
func TestTransportDoesNotReuseWhatItMustNot(t *testing.T) {
	for _, c := range []struct {
		name   string
		answer func(n int) (string, bool)
	}{
		{"Connection: close", func(int) (string, bool) {
			return "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}", true
		}},
		{"closed after the answer", func(int) (string, bool) { return okReply, true }},
		{"no length", func(int) (string, bool) { return "HTTP/1.1 200 OK\r\n\r\n{}", true }},
		{"bytes after the answer", func(int) (string, bool) { return okReply + "HTTP/1.1 200 OK\r\n", false }},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newRawServer(t, c.answer)
			tr := transportFor(t, s)
			for i := range 5 {
				code, body, err := post(context.Background(), tr, s.url())
				if err != nil || code != 200 || body != "{}" {
					t.Fatalf("request %d: %d %q %v", i, code, body, err)
				}
				time.Sleep(10 * time.Millisecond) // let a close arrive before the next request
			}
			if n := s.conns.Load(); n != 5 {
				t.Fatalf("5 requests used %d connections, want 5", n)
			}
		})
	}
	t.Run("body abandoned", func(t *testing.T) {
		s := newRawServer(t, func(int) (string, bool) {
			return "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", false
		})
		tr := transportFor(t, s)
		for range 3 {
			req, _ := http.NewRequest(http.MethodPost, s.url()+"/", strings.NewReader("x"))
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			var b [3]byte
			io.ReadFull(resp.Body, b[:])
			resp.Body.Close()
		}
		if n := s.conns.Load(); n != 3 {
			t.Fatalf("3 abandoned bodies left %d connections used, want 3", n)
		}
	})
}

// A server that closes an idle connection (as llama-server does after a number of
// requests) is not an error for the next request.
func TestTransportSurvivesIdleClose(t *testing.T) {
	s := newRawServer(t, func(n int) (string, bool) { return okReply, n == 1 })
	tr := transportFor(t, s)
	for i := range 6 {
		code, _, err := post(context.Background(), tr, s.url())
		if err != nil || code != 200 {
			t.Fatalf("request %d: %d %v", i, code, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := s.conns.Load(); n != 3 {
		t.Fatalf("6 requests, 2 per connection: %d connections", n)
	}
}

func TestTransportContext(t *testing.T) {
	release := make(chan struct{})
	var slow atomic.Bool
	s := newRawServer(t, func(int) (string, bool) {
		if slow.Load() {
			<-release
		}
		return okReply, false
	})
	defer close(release)
	tr := transportFor(t, s)
	slow.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := post(ctx, tr, s.url())
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("a request past its deadline: %v after %v", err, time.Since(start))
	}

	// Cancelled in the middle of a body: the read fails and the connection is not kept.
	s2 := newRawServer(t, func(int) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + strings.Repeat("x", 50), false
	})
	tr2 := transportFor(t, s2)
	ctx2, cancel2 := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx2, http.MethodPost, s2.url()+"/", strings.NewReader("x"))
	resp, err := tr2.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	var b [50]byte
	if _, err := io.ReadFull(resp.Body, b[:]); err != nil {
		t.Fatal(err)
	}
	cancel2()
	if _, err := resp.Body.Read(b[:]); err == nil {
		t.Fatal("a body read after its context was cancelled succeeded")
	}
	resp.Body.Close()
	// The next request goes out on a new connection (where the same half answer
	// leaves it waiting until its deadline).
	ctx3, cancel3 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel3()
	post(ctx3, tr2, s2.url())
	if n := s2.conns.Load(); n != 2 {
		t.Fatalf("an interrupted connection was reused (%d connections)", n)
	}
}

func TestTransportLimitsAndOddities(t *testing.T) {
	big := "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 70<<10) + "\r\nContent-Length: 2\r\n\r\n{}"
	s := newRawServer(t, func(int) (string, bool) { return big, false })
	if _, _, err := post(context.Background(), transportFor(t, s), s.url()); err == nil || !strings.Contains(err.Error(), "MaxHeaderBytes") {
		t.Errorf("headers of 70 KiB: %v", err)
	}
	hints := "HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + okReply
	s = newRawServer(t, func(int) (string, bool) { return hints, false })
	if code, body, err := post(context.Background(), transportFor(t, s), s.url()); err != nil || code != 200 || body != "{}" {
		t.Errorf("103 then 200: %d %q %v", code, body, err)
	}
	s = newRawServer(t, func(int) (string, bool) { return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", false })
	if _, _, err := post(context.Background(), transportFor(t, s), s.url()); err == nil || !strings.Contains(err.Error(), "switched protocols") {
		t.Errorf("101: %v", err)
	}
	s = newRawServer(t, func(int) (string, bool) { return "garbage\r\n\r\n", false })
	if _, _, err := post(context.Background(), transportFor(t, s), s.url()); err == nil {
		t.Error("a malformed status line was accepted")
	}
	tr := &backend.Transport{Dial: (&net.Dialer{}).DialContext}
	if _, _, err := post(context.Background(), tr, "https://127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), `scheme "https"`) {
		t.Errorf("https without a TLS transport: %v", err)
	}
}

// FuzzTransportResponse: whatever a model server answers, the transport returns a
// response or an error and a body that ends, never a panic or a hang; and a connection
// it keeps serves the next request cleanly (no byte of the odd answer is left over).
func FuzzTransportResponse(f *testing.F) {
	for _, seed := range []string{okReply, chunkedReply, "HTTP/1.1 200 OK\r\n\r\n{}",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n",
		"HTTP/1.1 103 Early Hints\r\n\r\n" + okReply, "HTTP/1.0 200 OK\r\n\r\nx", "HTTP/1.1 204 No Content\r\n\r\n" + okReply,
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n{}",
		okReply + "garbage", chunkedReply + "0\r\n\r\n"} {
		f.Add(seed)
	}
	var reply atomic.Value
	reply.Store("")
	s := newRawServer(f, func(n int) (string, bool) {
		if n == 0 {
			return reply.Load().(string), false // the first answer on each connection
		}
		return okReply, false
	})
	f.Fuzz(func(t *testing.T, answer string) {
		reply.Store(answer)
		tr := transportFor(t, s)
		// An answer shorter than it says waits for bytes that never come: the deadline
		// ends it.
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		defer cancel()
		post(ctx, tr, s.url())
		before := s.conns.Load()
		ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel2()
		code, body, err := post(ctx2, tr, s.url())
		if s.conns.Load() == before && (err != nil || code != 200 || body != "{}") {
			t.Fatalf("on the kept connection, after %q: %d %q %v", answer, code, body, err)
		}
	})
}

// failingConn fails its writes once fail is set, as a connection the server reset
// between two requests does.
type failingConn struct {
	net.Conn
	fail *atomic.Bool
}

func (c *failingConn) Write(p []byte) (int, error) {
	if c.fail.Load() {
		return 0, errors.New("connection reset by peer")
	}
	return c.Conn.Write(p)
}

// A request that cannot be written on a kept connection goes out once more on a new
// one; a request that cannot be written on a new connection fails.
func TestTransportResendsWhatWasNotWritten(t *testing.T) {
	s := newRawServer(t, func(int) (string, bool) { return okReply, false })
	var failFirst atomic.Bool
	var dials atomic.Int64
	tr := &backend.Transport{Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if dials.Add(1) == 1 {
			return &failingConn{Conn: c, fail: &failFirst}, nil // the connection to be reset
		}
		return c, nil
	}}
	defer tr.CloseIdleConnections()
	if code, _, err := post(context.Background(), tr, s.url()); err != nil || code != 200 {
		t.Fatalf("first request: %d %v", code, err)
	}
	failFirst.Store(true)
	if code, body, err := post(context.Background(), tr, s.url()); err != nil || code != 200 || body != "{}" {
		t.Fatalf("after a reset of the kept connection: %d %q %v", code, body, err)
	}
	if n := dials.Load(); n != 2 {
		t.Fatalf("%d connections dialled, want 2", n)
	}

	// A new connection that cannot take the request: no second try.
	var always atomic.Bool
	always.Store(true)
	tr2 := &backend.Transport{Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &failingConn{Conn: c, fail: &always}, nil
	}}
	if _, _, err := post(context.Background(), tr2, s.url()); err == nil || !strings.Contains(err.Error(), "reset") {
		t.Fatalf("a request no connection takes: %v", err)
	}
}
