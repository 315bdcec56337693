package backend

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// rawServer accepts connections on loopback and answers every request with a small
// chat completion, keeping each request's bytes as they arrived.
func rawServer(t *testing.T) (string, func() [][]byte) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan []byte, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					var raw bytes.Buffer
					req, err := http.ReadRequest(bufio.NewReader(io.TeeReader(br, &raw)))
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					got <- raw.Bytes()
					answer := `{"id":"c","choices":[{"message":{"content":"ok"},"finish_reason":"stop"}],"data":[{"embedding":[0.5]}]}`
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "+itoa(len(answer))+"\r\n\r\n"+answer)
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String(), func() [][]byte {
		var out [][]byte
		for {
			select {
			case b := <-got:
				out = append(out, b)
			default:
				return out
			}
		}
	}
}

func itoa(n int) string { return string(appendInt(nil, n)) }

func appendInt(b []byte, n int) []byte {
	if n >= 10 {
		b = appendInt(b, n/10)
	}
	return append(b, byte('0'+n%10))
}

func dialer() func(ctx context.Context, network, address string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext
}

// The direct path writes exactly the bytes net/http's Request.Write writes for the
// same request (the old path), for chat, streamed chat and embeddings, with and
// without an API key. Request.Write reads the body through bufio in a way that
// reads the whole request, so one TCP read may split it: the test compares bytes.
func TestPostWritesWhatRequestWriteWrites(t *testing.T) {
	for _, key := range []string{"", "sk-live_0123.abc~/+="} {
		base, requests := rawServer(t)
		tr := &Transport{Dial: dialer()}
		t.Cleanup(tr.CloseIdleConnections)
		o, err := NewOpenAI(base+"/v1", Options{HTTPClient: &http.Client{Transport: tr}, APIKey: key})
		if err != nil {
			t.Fatal(err)
		}
		if o.direct == nil {
			t.Fatalf("key %q: the direct path is not taken", key)
		}
		ctx := context.Background()
		req := ChatRequest{Model: "m", Messages: []Message{{Role: "user", Content: "hi"}}}
		if _, err := o.Chat(ctx, req, nil); err != nil {
			t.Fatal(err)
		}
		if _, _, err := o.Embed(ctx, "e", []string{"x"}); err != nil {
			t.Fatal(err)
		}
		got := requests()
		if len(got) != 2 {
			t.Fatalf("%d requests arrived, want 2", len(got))
		}
		// The same requests through net/http's client (the direct path off).
		o.direct = nil
		if _, err := o.Chat(ctx, req, nil); err != nil {
			t.Fatal(err)
		}
		if _, _, err := o.Embed(ctx, "e", []string{"x"}); err != nil {
			t.Fatal(err)
		}
		want := requests()
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Errorf("key %q, request %d:\ndirect:   %q\nnet/http: %q", key, i, got[i], want[i])
			}
		}
		// The streamed head: the same Accept as the old path.
		if h := o.chatStream; !bytes.Contains(h.Rest, []byte("Accept: text/event-stream\r\n")) {
			t.Errorf("stream head %q", h.Rest)
		}
	}
}

// What the direct path leaves to net/http: another transport, a client timeout, a key
// or URL needing what Request.Write does with them (a space, a non-ASCII host).
func TestDirectPostOnlyForPlainRequests(t *testing.T) {
	tr := &Transport{Dial: dialer()}
	for name, c := range map[string]struct {
		url    string
		client *http.Client
		key    string
	}{
		"another transport":  {"http://127.0.0.1:1/v1", &http.Client{Transport: http.DefaultTransport}, ""},
		"a client timeout":   {"http://127.0.0.1:1/v1", &http.Client{Transport: tr, Timeout: 1}, ""},
		"https":              {"https://127.0.0.1:1/v1", &http.Client{Transport: tr}, ""},
		"a key with a space": {"http://127.0.0.1:1/v1", &http.Client{Transport: tr}, "a b"},
		"a key with CRLF":    {"http://127.0.0.1:1/v1", &http.Client{Transport: tr}, "a\r\nX-Injected: 1"},
		"a non-ASCII host":   {"http://bücher.example:1/v1", &http.Client{Transport: tr}, ""},
		"an escaped path":    {"http://127.0.0.1:1/a%20b", &http.Client{Transport: tr}, ""},
	} {
		o, err := NewOpenAI(c.url, Options{HTTPClient: c.client, APIKey: c.key})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if o.direct != nil {
			t.Errorf("%s: the direct path is taken", name)
		}
	}
}

// A redirect is followed as net/http's client follows it; a refused connection is
// reported as the client reported it.
func TestDirectPostRedirectAndRefusal(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{"id":"c","choices":[{"message":{"content":"moved"},"finish_reason":"stop"}]}`)
	}))
	defer target.Close()
	from := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/v1/chat/completions", http.StatusTemporaryRedirect)
	}))
	defer from.Close()
	tr := &Transport{Dial: dialer()}
	defer tr.CloseIdleConnections()
	o, err := NewOpenAI(from.URL, Options{HTTPClient: &http.Client{Transport: tr}})
	if err != nil || o.direct == nil {
		t.Fatalf("%v, direct %v", err, o.direct)
	}
	got, err := o.Chat(context.Background(), ChatRequest{Model: "m", Messages: []Message{{Role: "user", Content: "hi"}}}, nil)
	if err != nil || got.Content != "moved" {
		t.Fatalf("after a 307: %+v, %v", got, err)
	}

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	o, _ = NewOpenAI("http://"+addr, Options{HTTPClient: &http.Client{Transport: tr}})
	_, err = o.Chat(context.Background(), ChatRequest{Model: "m", Messages: []Message{{Role: "user", Content: "hi"}}}, nil)
	if err == nil || !strings.Contains(err.Error(), `backend: Post "http://`+addr+`/v1/chat/completions": `) || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("refused: %v", err)
	}
}

// BenchmarkPost: one chat completion through the direct path and, the same client with
// it off, through net/http's client and request writer (the server, in the same
// process, answers both alike).
func BenchmarkPost(b *testing.B) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"c","choices":[{"message":{"content":"ok"},"finish_reason":"stop"}]}`)
	}))
	defer ts.Close()
	tr := &Transport{Dial: dialer()}
	defer tr.CloseIdleConnections()
	req := ChatRequest{Model: "m", Messages: []Message{{Role: "user", Content: "Summarise the record."}}}
	for _, direct := range []bool{true, false} {
		b.Run(map[bool]string{true: "direct", false: "net-http"}[direct], func(b *testing.B) {
			o, err := NewOpenAI(ts.URL, Options{HTTPClient: &http.Client{Transport: tr}, APIKey: "sk-bench"})
			if err != nil {
				b.Fatal(err)
			}
			if !direct {
				o.direct = nil
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := o.Chat(context.Background(), req, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
