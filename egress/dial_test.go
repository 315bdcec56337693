package egress_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sios-project/sios/egress"
)

// countingListener counts the connections a test server accepts.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// startLoopback starts an HTTP server on 127.0.0.1 that counts accepted connections.
func startLoopback(t *testing.T, h http.Handler) (*httptest.Server, *countingListener, egress.Rule) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = cl
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, cl, egress.Rule{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port}
}

func hello(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }

func TestDialAllowedThenRefused(t *testing.T) {
	allowedSrv, allowedLn, allowedRule := startLoopback(t, http.HandlerFunc(hello))
	otherSrv, otherLn, otherRule := startLoopback(t, http.HandlerFunc(hello))

	var (
		mu       sync.Mutex
		refusals []egress.Refusal
	)
	g, err := egress.New([]egress.Rule{allowedRule}, func(r egress.Refusal) {
		mu.Lock()
		refusals = append(refusals, r)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	tr := g.HTTPTransport()
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	resp, err := client.Get(allowedSrv.URL)
	if err != nil {
		t.Fatalf("allowed server: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello" || allowedLn.accepted.Load() != 1 {
		t.Fatalf("allowed server: body %q, %d connections", body, allowedLn.accepted.Load())
	}

	_, err = client.Get(otherSrv.URL)
	var re *egress.RefusedError
	if !errors.As(err, &re) {
		t.Fatalf("unlisted server: err = %v, want *RefusedError", err)
	}
	wantAddr := otherRule.String()
	wantMsg := "egress refused: " + wantAddr + " is not an allowed backend or peer (allowed: " + allowedRule.String() + ")"
	if re.Address != wantAddr || re.Error() != wantMsg {
		t.Fatalf("refusal %q, want %q", re.Error(), wantMsg)
	}
	mu.Lock()
	got := append([]egress.Refusal(nil), refusals...)
	mu.Unlock()
	if len(got) != 1 || got[0].Network != "tcp" || got[0].Address != wantAddr || got[0].Reason != re.Reason {
		t.Fatalf("onRefuse saw %+v", got)
	}
	otherSrv.Close() // waits for the server: any connection would have been accepted by now
	if n := otherLn.accepted.Load(); n != 0 {
		t.Fatalf("the unlisted server accepted %d connections; the guard must refuse before dialling", n)
	}
}

func TestDialRefusesOtherNetworksBeforeDialling(t *testing.T) {
	var calls atomic.Int64
	g, _ := egress.New([]egress.Rule{{Host: "127.0.0.1", Port: 9}}, func(egress.Refusal) { calls.Add(1) })
	conn, err := g.DialContext(context.Background(), "udp", "127.0.0.1:9")
	var re *egress.RefusedError
	if conn != nil || !errors.As(err, &re) || calls.Load() != 1 {
		t.Fatalf("udp dial: conn %v, err %v, onRefuse calls %d", conn, err, calls.Load())
	}
	// Check alone never reports.
	_ = g.Check("udp", "127.0.0.1:9")
	if calls.Load() != 1 {
		t.Fatal("Check called onRefuse")
	}
}

func TestRemoveClosesOpenConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	rule := egress.Rule{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port}
	g, _ := egress.New([]egress.Rule{rule}, nil)
	conn, err := g.DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := g.Remove(rule); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after Remove: %v, want net.ErrClosed", err)
	}
	if err := g.Check("tcp", ln.Addr().String()); err == nil {
		t.Fatal("still allowed after Remove")
	}
}

// TestHTTP2OnlyOverTLS: the transport negotiates h2 with a TLS server and stays on
// HTTP/1.1 in cleartext even when the server would speak h2c.
func TestHTTP2OnlyOverTLS(t *testing.T) {
	proto := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Proto) })

	tlsSrv := httptest.NewUnstartedServer(proto)
	tlsSrv.EnableHTTP2 = true
	tlsSrv.StartTLS()
	defer tlsSrv.Close()

	plain := httptest.NewUnstartedServer(proto)
	plain.Config.Protocols = new(http.Protocols)
	plain.Config.Protocols.SetHTTP1(true)
	plain.Config.Protocols.SetUnencryptedHTTP2(true)
	plain.Start()
	defer plain.Close()

	var rules []egress.Rule
	for _, s := range []*httptest.Server{tlsSrv, plain} {
		rules = append(rules, egress.Rule{Host: "127.0.0.1", Port: s.Listener.Addr().(*net.TCPAddr).Port})
	}
	g, err := egress.New(rules, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := g.HTTPTransport()
	defer tr.CloseIdleConnections()
	if tr.Proxy != nil {
		t.Fatal("transport uses a proxy")
	}
	tr.TLSClientConfig = tlsSrv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	client := &http.Client{Transport: tr}

	for _, tc := range []struct {
		url, want string
	}{{tlsSrv.URL, "HTTP/2.0"}, {plain.URL, "HTTP/1.1"}} {
		resp, err := client.Get(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != tc.want {
			t.Errorf("%s: server saw %s, want %s", tc.url, body, tc.want)
		}
		if tc.want == "HTTP/2.0" && resp.TLS == nil {
			t.Errorf("h2 without TLS")
		}
	}
}
