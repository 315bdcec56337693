package identity

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sios-project/sios/internal/files"
	"github.com/sios-project/sios/jcs"
)

// File names inside a data directory.
const (
	NodeKeyFile  = "node.key"
	NodeCertFile = "node.cert"
	RootKeyFile  = "root.key"
)

// Prefixes of derived identifiers.
const (
	NodePrefix = "node"
	RootPrefix = "root"
)

const (
	certVersion = "sios-cert/1"
	certDomain  = "sios-cert/1"
	maxCertFile = 64 << 10
)

// Certificate is an enrolment certificate: the institution root's statement that the
// node keys belong to a node of that institution.
type Certificate struct {
	V        string        `json:"v"`
	NodeID   string        `json:"node_id"`
	Name     string        `json:"name"`
	Node     PublicKeyJSON `json:"node"`
	RootID   string        `json:"root_id"`
	Root     PublicKeyJSON `json:"root"`
	IssuedAt string        `json:"issued_at"`
	// Signature is the root's signature over the canonical certificate without this field.
	Signature *Signature `json:"signature,omitempty"`
}

func (c Certificate) body() ([]byte, error) {
	c.Signature = nil
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	return jcs.Canonicalize(b)
}

// Issue makes a certificate binding node to root, signed by root.
func Issue(root *PrivateKey, node PublicKey, name string, now time.Time) (Certificate, error) {
	if root.kind != KindRoot {
		return Certificate{}, fmt.Errorf("enrolment needs a root key, got a %s key", root.kind)
	}
	c := Certificate{
		V: certVersion, NodeID: node.ID(NodePrefix), Name: name, Node: node.JSON(),
		RootID: root.pub.ID(RootPrefix), Root: root.pub.JSON(), IssuedAt: now.UTC().Format(time.RFC3339),
	}
	body, err := c.body()
	if err != nil {
		return Certificate{}, err
	}
	sig := root.Sign(certDomain, body)
	c.Signature = &sig
	return c, nil
}

// Verify checks that the ids match the keys and that the root signed the certificate.
// It returns the node's and the root's public keys.
func (c Certificate) Verify() (node, root PublicKey, err error) {
	if c.V != certVersion {
		return node, root, fmt.Errorf("certificate version %q, want %q", c.V, certVersion)
	}
	if node, err = c.Node.Parse(); err != nil {
		return node, root, fmt.Errorf("certificate node key: %v", err)
	}
	if root, err = c.Root.Parse(); err != nil {
		return node, root, fmt.Errorf("certificate root key: %v", err)
	}
	if id := node.ID(NodePrefix); id != c.NodeID {
		return node, root, fmt.Errorf("certificate node_id %s does not match its keys (%s)", c.NodeID, id)
	}
	if id := root.ID(RootPrefix); id != c.RootID {
		return node, root, fmt.Errorf("certificate root_id %s does not match its keys (%s)", c.RootID, id)
	}
	if c.Signature == nil {
		return node, root, errors.New("certificate is not signed")
	}
	body, err := c.body()
	if err != nil {
		return node, root, err
	}
	if err := root.Verify(certDomain, body, *c.Signature); err != nil {
		return node, root, fmt.Errorf("certificate root signature: %w", err)
	}
	return node, root, nil
}

// Node is a loaded node identity: its signing key and its enrolment certificate.
type Node struct {
	Key  *PrivateKey
	Cert Certificate
	Root PublicKey
}

// ID is the node id.
func (n *Node) ID() string { return n.Cert.NodeID }

// Public is the node's public key pair.
func (n *Node) Public() PublicKey { return n.Key.pub }

// ErrExists is returned by Init when the directory already holds an identity.
var ErrExists = errors.New("data directory already holds a node identity")

// ErrNoIdentity is returned by Load when the directory has not been initialised.
var ErrNoIdentity = errors.New("data directory holds no node identity")

// InitResult says what Init created.
type InitResult struct {
	Node *Node
	// RootKeyFile is the path of the root key Init generated, or "" when one was given.
	RootKeyFile string
}

// Init creates a node identity in dir. With rootKeyPath empty it generates an institution
// root key in dir/root.key; otherwise it enrols under the root key in that file.
// It never overwrites an existing identity.
func Init(dir, name, rootKeyPath string, now time.Time) (*InitResult, error) {
	return initNode(dir, name, rootKeyPath, now, SaveKey)
}

// InitSealed is Init for a node whose seeds never reach the disk in the clear: seal
// turns the new node key into the bytes written to dir/node.key (mode 0600), such as
// identity/tpm's sealed key file. Load refuses that file with ErrKeySealed; LoadSealed
// opens it.
func InitSealed(dir, name, rootKeyPath string, now time.Time, seal func(*PrivateKey) ([]byte, error)) (*InitResult, error) {
	return initNode(dir, name, rootKeyPath, now, func(path string, k *PrivateKey) error {
		b, err := seal(k)
		if err != nil {
			return err
		}
		return writeKeyFile(path, b)
	})
}

func initNode(dir, name, rootKeyPath string, now time.Time, saveNodeKey func(path string, k *PrivateKey) error) (*InitResult, error) {
	// The node key is written last, so its presence is what marks a finished init.
	if _, err := os.Stat(filepath.Join(dir, NodeKeyFile)); err == nil {
		return nil, ErrExists
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	res := &InitResult{}
	var root *PrivateKey
	var err error
	if rootKeyPath != "" {
		if root, err = LoadKey(rootKeyPath, KindRoot); err != nil {
			return nil, err
		}
	} else {
		res.RootKeyFile = filepath.Join(dir, RootKeyFile)
		// A root key left by an init that was interrupted is reused, never replaced.
		if root, err = LoadKey(res.RootKeyFile, KindRoot); errors.Is(err, os.ErrNotExist) {
			if root, err = GenerateKey(KindRoot); err != nil {
				return nil, err
			}
			err = SaveKey(res.RootKeyFile, root)
		}
		if err != nil {
			return nil, err
		}
	}
	key, err := GenerateKey(KindNode)
	if err != nil {
		return nil, err
	}
	if name == "" {
		name, _ = os.Hostname()
	}
	cert, err := Issue(root, key.pub, name, now)
	if err != nil {
		return nil, err
	}
	certJSON, err := json.MarshalIndent(cert, "", "  ")
	if err != nil {
		return nil, err
	}
	// The certificate is written first and the key last: a crash in between leaves no
	// key, so a retried init starts over instead of finding half an identity.
	if err := files.Replace(filepath.Join(dir, NodeCertFile), append(certJSON, '\n'), 0o644); err != nil {
		return nil, err
	}
	if err := saveNodeKey(filepath.Join(dir, NodeKeyFile), key); err != nil {
		return nil, err
	}
	res.Node = &Node{Key: key, Cert: cert, Root: root.pub}
	return res, nil
}

// Load reads and checks the node identity in dir.
func Load(dir string) (*Node, error) {
	return loadNode(dir, func(keyPath string) (*PrivateKey, error) { return LoadKey(keyPath, KindNode) })
}

// LoadSealed is Load for a node key file written by InitSealed: unseal turns the file's
// bytes (read with LoadKey's checks: mode 0600, at most 16 KiB) back into the node key.
// The certificate is checked against the unsealed key exactly as Load checks it.
func LoadSealed(dir string, unseal func(keyFile []byte) (*PrivateKey, error)) (*Node, error) {
	return loadNode(dir, func(keyPath string) (*PrivateKey, error) {
		b, err := ReadKeyFile(keyPath)
		if err != nil {
			return nil, err
		}
		k, err := unseal(b)
		if err != nil {
			return nil, &KeyFileError{Path: keyPath, Err: err}
		}
		if k.kind != KindNode {
			return nil, &KeyFileError{Path: keyPath, Err: fmt.Errorf("holds a %s key, want a %s key", k.kind, KindNode)}
		}
		return k, nil
	})
}

func loadNode(dir string, loadKey func(keyPath string) (*PrivateKey, error)) (*Node, error) {
	certPath := filepath.Join(dir, NodeCertFile)
	keyPath := filepath.Join(dir, NodeKeyFile)
	if _, err := os.Stat(keyPath); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNoIdentity, dir)
	}
	key, err := loadKey(keyPath)
	if err != nil {
		return nil, err
	}
	cert, err := LoadCertificate(certPath)
	if err != nil {
		return nil, err
	}
	node, root, err := cert.Verify()
	if err != nil {
		return nil, fmt.Errorf("%s: %v", certPath, err)
	}
	if !node.Equal(key.pub) {
		return nil, fmt.Errorf("%s certifies other keys than %s holds", certPath, keyPath)
	}
	return &Node{Key: key, Cert: cert, Root: root}, nil
}

// LoadCertificate reads a certificate file without verifying it.
func LoadCertificate(path string) (Certificate, error) {
	var c Certificate
	b, err := readLimited(path, maxCertFile)
	if err != nil {
		return c, err
	}
	// Unknown members are refused: they would not be covered by the root's signature.
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("%s is corrupt: %v", path, err)
	}
	return c, nil
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d allowed", path, st.Size(), limit)
	}
	b := make([]byte, st.Size())
	_, err = f.ReadAt(b, 0)
	if err != nil && st.Size() > 0 {
		return nil, err
	}
	return b, nil
}
