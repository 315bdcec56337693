package ledger

import (
	"context"
	"errors"
	"net"
	"net/http"
)

// noNetwork is the HTTP client handed to Tessera. The audit log never talks to the
// network by itself (witnessing goes through the fleet layer), so any dial is refused.
var noNetwork = &http.Client{Transport: &http.Transport{
	DialContext: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("sios: the audit ledger makes no network connections")
	},
}}
