package backend_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sios-project/sios/backend"
	"github.com/sios-project/sios/backend/mock"
	"github.com/sios-project/sios/egress"
)

// BenchmarkChat: one non-streamed chat completion against the mock with no service
// time, over loopback, through the egress-guarded transport: the client's own cost
// plus the mock's and the loopback round trip.
func BenchmarkChat(b *testing.B) {
	c, _ := serve(b, &mock.Server{Reply: "The quick brown fox jumps over the lazy dog."}, backend.Options{})
	req := userMessage("Summarise the record.")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Chat(ctx, req, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkChatStream: the same, streamed (11 chunks, usage, [DONE]).
func BenchmarkChatStream(b *testing.B) {
	c, _ := serve(b, &mock.Server{Reply: "The quick brown fox jumps over the lazy dog."}, backend.Options{})
	req := userMessage("Summarise the record.")
	ctx := context.Background()
	onDelta := func(backend.Delta) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Chat(ctx, req, onDelta); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkChatParallel: non-streamed completions from GOMAXPROCS goroutines at once.
func BenchmarkChatParallel(b *testing.B) {
	c, _ := serve(b, &mock.Server{Reply: "The quick brown fox jumps over the lazy dog."}, backend.Options{})
	req := userMessage("Summarise the record.")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Chat(context.Background(), req, nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkChatBaseline is BenchmarkChat's floor: the same request posted to the same
// mock through the same guarded transport, the answer read and discarded unparsed.
func BenchmarkChatBaseline(b *testing.B) {
	ts := httptest.NewServer(&mock.Server{Reply: "The quick brown fox jumps over the lazy dog."})
	defer ts.Close()
	g, err := egress.New([]egress.Rule{{Host: "127.0.0.1", Port: ts.Listener.Addr().(*net.TCPAddr).Port}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	tr := g.HTTPTransport()
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	body, _ := json.Marshal(userMessage("Summarise the record."))
	b.ReportAllocs()
	for b.Loop() {
		resp, err := client.Post(ts.URL+"/v1/chat/completions", "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
