package fleet

import (
	"bytes"
	"encoding/json"

	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/internal/files"
)

// The local trust store: the institution roots this node's operator has pinned, one
// file each in DIR/trust/roots/. A node always trusts its own institution's root.
// Trust is decided here, locally; nothing in the fleet can add to it.

// RootFileVersion is the "v" of an exported root public key.
const RootFileVersion = "sios-root/1"

// maxRootFile bounds a root file read from outside.
const maxRootFile = 64 << 10

// RootFile is an institution root's public key as operators hand it to each other.
type RootFile struct {
	V      string `json:"v"`
	RootID string `json:"root_id"`
	identity.PublicKeyJSON
}

// ExportRoot describes the root that enrolled this node.
func ExportRoot(cert identity.Certificate) RootFile {
	return RootFile{V: RootFileVersion, RootID: cert.RootID, PublicKeyJSON: cert.Root}
}

// ParseRoot decodes a root file and checks that its id matches its keys.
func ParseRoot(data []byte) (RootFile, identity.PublicKey, error) {
	var rf RootFile
	if len(data) > maxRootFile {
		return rf, identity.PublicKey{}, fmt.Errorf("root file is larger than %d bytes", maxRootFile)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rf); err != nil {
		return rf, identity.PublicKey{}, fmt.Errorf("not a root file: %v", err)
	}
	if rf.V != RootFileVersion {
		return rf, identity.PublicKey{}, fmt.Errorf("root file v is %q, want %q", rf.V, RootFileVersion)
	}
	pub, err := rf.PublicKeyJSON.Parse()
	if err != nil {
		return rf, identity.PublicKey{}, err
	}
	if id := pub.ID(identity.RootPrefix); id != rf.RootID {
		return rf, identity.PublicKey{}, fmt.Errorf("root_id %s does not match the keys (they are %s's)", rf.RootID, id)
	}
	return rf, pub, nil
}

func rootsDir(dataDir string) string { return filepath.Join(dataDir, "trust", "roots") }

// AddRoot pins the root in data (a RootFile) in dataDir's trust store and returns it.
// Pinning a root already pinned changes nothing.
func AddRoot(dataDir string, data []byte) (RootFile, error) {
	rf, _, err := ParseRoot(data)
	if err != nil {
		return rf, err
	}
	dir := rootsDir(dataDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return rf, err
	}
	out, err := json.MarshalIndent(rf, "", "  ")
	if err != nil {
		return rf, err
	}
	return rf, files.Replace(filepath.Join(dir, rf.RootID+".json"), append(out, '\n'), 0o644)
}

// TrustedRoot is one pinned root and where it came from.
type TrustedRoot struct {
	RootID string `json:"root_id"`
	Own    bool   `json:"own"` // this node's own institution
	File   string `json:"file,omitempty"`
}

// LoadTrust returns the roots this node trusts: its own institution's and every one
// pinned in the store. A file in the store that does not verify is an error naming it.
func LoadTrust(dataDir string, own identity.Certificate) (Trust, []TrustedRoot, error) {
	ownPub, err := own.Root.Parse()
	if err != nil {
		return Trust{}, nil, err
	}
	keys := []identity.PublicKey{ownPub}
	list := []TrustedRoot{{RootID: own.RootID, Own: true}}
	names, err := filepath.Glob(filepath.Join(rootsDir(dataDir), "*.json"))
	if err != nil {
		return Trust{}, nil, err
	}
	sort.Strings(names)
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			return Trust{}, nil, err
		}
		rf, pub, err := ParseRoot(data)
		if err != nil {
			return Trust{}, nil, fmt.Errorf("%s: %v", name, err)
		}
		if strings.TrimSuffix(filepath.Base(name), ".json") != rf.RootID {
			return Trust{}, nil, fmt.Errorf("%s holds root %s: the file name must be its id", name, rf.RootID)
		}
		if rf.RootID == own.RootID {
			continue
		}
		keys = append(keys, pub)
		list = append(list, TrustedRoot{RootID: rf.RootID, File: name})
	}
	return NewTrust(keys...), list, nil
}
