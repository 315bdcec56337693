package backend

import (
	"net/http"
	"sync"
)

// Pool keeps one OpenAI client per base URL, every one dialling through the same
// transport (the node's egress guard), so that connections to a model server are kept
// alive and reused across requests. It is safe for concurrent use.
type Pool struct {
	client *http.Client
	apiKey string

	mu      sync.Mutex
	clients map[string]*OpenAI // guarded by mu; by base URL as configured
}

// NewPool returns a pool whose clients dial through transport and send apiKey (if not
// empty) as a bearer key.
func NewPool(transport http.RoundTripper, apiKey string) *Pool {
	return &Pool{client: &http.Client{Transport: transport}, apiKey: apiKey, clients: map[string]*OpenAI{}}
}

// Get returns the client for baseURL (see NewOpenAI for the URL rule).
func (p *Pool) Get(baseURL string) (Backend, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[baseURL]; ok {
		return c, nil
	}
	c, err := NewOpenAI(baseURL, Options{HTTPClient: p.client, APIKey: p.apiKey})
	if err != nil {
		return nil, err
	}
	p.clients[baseURL] = c
	return c, nil
}
