package tpm

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/jcs"
)

// KeyFile is a node key file whose seeds are sealed to a TPM (v is
// identity.SealedKeyVersion): what Init writes to DIR/node.key in place of the seeds,
// and Load unseals at start. Nothing in it is secret without the TPM: the sealed blob
// and the AK's private part are encrypted under the TPM's storage root key.
type KeyFile struct {
	V      string `json:"v"`
	Kind   string `json:"kind"`    // identity.KindNode
	NodeID string `json:"node_id"` // the node whose seeds are sealed
	// TPM is where the TPM was at init (a device path or a simulator's HOST:PORT): the
	// default for start-up.
	TPM string `json:"tpm"`
	// SRKName is the TPM Name (hex) of the storage root key the blobs are sealed under:
	// another TPM, or this one after its owner hierarchy was cleared, has another.
	SRKName string `json:"srk_name"`
	// PCRs lists the SHA-256 PCRs the seeds are sealed to (ascending; empty: none) and
	// PCRValues their values (hex) when sealed, so a refusal can name what changed.
	PCRs      []int    `json:"pcrs"`
	PCRValues []string `json:"pcr_values"`
	// SealedPublic and SealedPrivate are the sealed data object (TPMT_PUBLIC and the
	// contents of TPM2B_PRIVATE); AKPublic and AKPrivate the attestation key's.
	SealedPublic  []byte `json:"sealed_public"`
	SealedPrivate []byte `json:"sealed_private"`
	AKPublic      []byte `json:"ak_public"`
	AKPrivate     []byte `json:"ak_private"`
}

// seedsSize is what is sealed: the ML-DSA-65 seed followed by the Ed25519 seed.
const seedsSize = mldsa65.SeedSize + ed25519.SeedSize

// Marshal encodes the key file as written to disk (indented JSON, newline-terminated).
func (kf *KeyFile) Marshal() ([]byte, error) {
	if err := kf.validate(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(kf, "", "  ")
	if err != nil {
		return nil, err
	}
	b = append(b, '\n')
	if len(b) > MaxSealedKeyFile {
		return nil, fmt.Errorf("sealed key file is %d bytes, more than %d (MaxSealedKeyFile)", len(b), MaxSealedKeyFile)
	}
	return b, nil
}

// ParseKeyFile decodes a sealed key file, refusing unknown or repeated members and
// blobs that are not TPM structures.
func ParseKeyFile(b []byte) (*KeyFile, error) {
	if len(b) > MaxSealedKeyFile {
		return nil, fmt.Errorf("sealed key file is %d bytes, more than %d (MaxSealedKeyFile)", len(b), MaxSealedKeyFile)
	}
	var kf KeyFile
	if err := jcs.DecodeStrict(b, &kf); err != nil {
		return nil, fmt.Errorf("sealed key file: %v", err)
	}
	if err := kf.validate(); err != nil {
		return nil, err
	}
	return &kf, nil
}

func (kf *KeyFile) validate() error {
	if kf.V != identity.SealedKeyVersion {
		return fmt.Errorf("sealed key file v is %q, want %q", short(kf.V), identity.SealedKeyVersion)
	}
	if kf.Kind != identity.KindNode {
		return fmt.Errorf("sealed key file holds a %q key, want a %s key", short(kf.Kind), identity.KindNode)
	}
	if !validNodeID(kf.NodeID) {
		return fmt.Errorf("sealed key file node_id %q is not a node id", short(kf.NodeID))
	}
	if kf.TPM == "" || len(kf.TPM) > 4096 {
		return errors.New("sealed key file tpm must name where the TPM was (1–4096 bytes)")
	}
	if !isHexName(kf.SRKName) {
		return errors.New("sealed key file srk_name is not a SHA-256 TPM Name in lowercase hex")
	}
	if err := checkPCRs(kf.PCRs); err != nil {
		return fmt.Errorf("sealed key file pcrs: %v", err)
	}
	if len(kf.PCRValues) != len(kf.PCRs) {
		return fmt.Errorf("sealed key file has %d pcr_values for %d pcrs", len(kf.PCRValues), len(kf.PCRs))
	}
	for _, v := range kf.PCRValues {
		if !isHex(v, 32) {
			return errors.New("sealed key file pcr_values must be SHA-256 values in lowercase hex")
		}
	}
	sealed, err := parsePublic(kf.SealedPublic)
	if err != nil {
		return fmt.Errorf("sealed key file sealed_public: %v", err)
	}
	if sealed.Type != tpm2.TPMAlgKeyedHash {
		return errors.New("sealed key file sealed_public is not a sealed data object")
	}
	ak, err := parsePublic(kf.AKPublic)
	if err != nil {
		return fmt.Errorf("sealed key file ak_public: %v", err)
	}
	if _, err := akPublicKey(*ak); err != nil {
		return fmt.Errorf("sealed key file ak_public: %v", err)
	}
	if len(kf.SealedPrivate) == 0 || len(kf.SealedPrivate) > MaxTPMPublic || len(kf.AKPrivate) == 0 || len(kf.AKPrivate) > MaxTPMPublic {
		return fmt.Errorf("sealed key file private blobs must be 1–%d bytes (MaxTPMPublic)", MaxTPMPublic)
	}
	return nil
}

// Seal seals key's seeds to the TPM under its storage root key (to the current values
// of pcrs, when given) and creates the node's attestation key. The seeds cross to the
// TPM encrypted (a session salted with the SRK). It returns the key file to write in
// place of the plaintext key.
func (t *TPM) Seal(key *identity.PrivateKey, pcrs []int) (*KeyFile, error) {
	if key.Kind() != identity.KindNode {
		return nil, fmt.Errorf("only a node key is sealed to a TPM, not a %s key", key.Kind())
	}
	if err := checkPCRs(pcrs); err != nil {
		return nil, err
	}
	m, e := key.Seeds()
	secret := append(m[:], e[:]...)
	clear(m[:])
	clear(e[:])
	defer clear(secret)
	kf := &KeyFile{V: identity.SealedKeyVersion, Kind: identity.KindNode, NodeID: key.Public().ID(identity.NodePrefix), TPM: t.addr, PCRs: pcrs}
	if kf.PCRs == nil {
		kf.PCRs = []int{}
	}
	err := t.do(func(tr transport.TPM) error {
		srk, err := createSRK(tr)
		if err != nil {
			return err
		}
		defer flush(tr, srk.handle)
		kf.SRKName = hex.EncodeToString(srk.name.Buffer)

		tmpl := tpm2.TPMTPublic{
			Type:             tpm2.TPMAlgKeyedHash,
			NameAlg:          tpm2.TPMAlgSHA256,
			ObjectAttributes: tpm2.TPMAObject{FixedTPM: true, FixedParent: true, NoDA: true, UserWithAuth: len(pcrs) == 0},
			Parameters:       tpm2.NewTPMUPublicParms(tpm2.TPMAlgKeyedHash, &tpm2.TPMSKeyedHashParms{Scheme: tpm2.TPMTKeyedHashScheme{Scheme: tpm2.TPMAlgNull}}),
		}
		kf.PCRValues = []string{}
		if len(pcrs) > 0 {
			values, err := readPCRs(tr, pcrs)
			if err != nil {
				return err
			}
			policy, err := pcrPolicy(pcrs, values)
			if err != nil {
				return err
			}
			tmpl.AuthPolicy = tpm2.TPM2BDigest{Buffer: policy}
			for _, v := range values {
				kf.PCRValues = append(kf.PCRValues, hex.EncodeToString(v))
			}
		}
		rsp, err := tpm2.Create{
			ParentHandle: tpm2.AuthHandle{Handle: srk.handle, Name: srk.name, Auth: salted(srk, tpm2.AESEncryption(128, tpm2.EncryptIn))},
			InSensitive: tpm2.TPM2BSensitiveCreate{Sensitive: &tpm2.TPMSSensitiveCreate{
				Data: tpm2.NewTPMUSensitiveCreate(&tpm2.TPM2BSensitiveData{Buffer: secret}),
			}},
			InPublic: tpm2.New2B(tmpl),
		}.Execute(tr)
		if err != nil {
			return fmt.Errorf("sealing the node key: %v", err)
		}
		pub, err := rsp.OutPublic.Contents()
		if err != nil {
			return fmt.Errorf("sealing the node key: %v", err)
		}
		kf.SealedPublic, kf.SealedPrivate = tpm2.Marshal(pub), rsp.OutPrivate.Buffer

		ak, akPub, akPriv, err := createAK(tr, srk)
		if err != nil {
			return err
		}
		flush(tr, ak.handle)
		kf.AKPublic, kf.AKPrivate = akPub, akPriv
		return nil
	})
	if err != nil {
		return nil, err
	}
	return kf, kf.validate()
}

// Unseal unseals the node key from kf. It fails with ErrOtherTPM when this TPM's
// storage root key is not the one the key was sealed under, and with ErrPCRChanged
// (naming the PCRs) when a sealed PCR changed.
func (t *TPM) Unseal(kf *KeyFile) (*identity.PrivateKey, error) {
	var key *identity.PrivateKey
	err := t.do(func(tr transport.TPM) error {
		srk, err := createSRK(tr)
		if err != nil {
			return err
		}
		defer flush(tr, srk.handle)
		key, err = unseal(tr, srk, kf)
		return err
	})
	return key, err
}

// unseal is Unseal with the SRK loaded.
func unseal(tr transport.TPM, srk *object, kf *KeyFile) (*identity.PrivateKey, error) {
	if got := hex.EncodeToString(srk.name.Buffer); got != kf.SRKName {
		return nil, fmt.Errorf("%w: this TPM's storage root key is %.16s…, the key was sealed under %.16s… "+
			"(a data directory copied from another machine, or this TPM's owner hierarchy was cleared since init)", ErrOtherTPM, got, kf.SRKName)
	}
	auth := salted(srk, tpm2.AESEncryption(128, tpm2.EncryptOut))
	if len(kf.PCRs) > 0 {
		now, err := readPCRs(tr, kf.PCRs)
		if err != nil {
			return nil, err
		}
		sealed := make([][]byte, len(kf.PCRValues))
		for i, v := range kf.PCRValues {
			sealed[i], _ = hex.DecodeString(v)
		}
		if changed := changedPCRs(kf.PCRs, sealed, now); len(changed) > 0 {
			return nil, fmt.Errorf("%w: PCR %s (SHA-256 bank) changed since the key was sealed to PCRs %s: "+
				"the platform booted other firmware, boot loader or configuration, or something extended them", ErrPCRChanged, joinInts(changed), joinInts(kf.PCRs))
		}
		sel := pcrSelection(kf.PCRs)
		auth = tpm2.Policy(tpm2.TPMAlgSHA256, 16, func(tr transport.TPM, h tpm2.TPMISHPolicy, _ tpm2.TPM2BNonce) error {
			_, err := tpm2.PolicyPCR{PolicySession: h, PcrDigest: tpm2.TPM2BDigest{Buffer: pcrDigest(sealed)}, Pcrs: sel}.Execute(tr)
			return err
		}, tpm2.AESEncryption(128, tpm2.EncryptOut), tpm2.Salted(srk.handle, srk.public))
	}
	obj, err := loadObject(tr, srk, kf.SealedPublic, kf.SealedPrivate)
	if err != nil {
		return nil, err
	}
	defer flush(tr, obj.handle)
	rsp, err := tpm2.Unseal{ItemHandle: tpm2.AuthHandle{Handle: obj.handle, Name: obj.name, Auth: auth}}.Execute(tr)
	if err != nil {
		if errors.Is(err, tpm2.TPMRCPolicyFail) || errors.Is(err, tpm2.TPMRCValue) || errors.Is(err, tpm2.TPMRCPCRChanged) {
			return nil, fmt.Errorf("%w: the TPM refuses to unseal (%v)", ErrPCRChanged, err)
		}
		return nil, fmt.Errorf("unsealing the node key: %v", err)
	}
	secret := rsp.OutData.Buffer
	defer clear(secret)
	if len(secret) != seedsSize {
		return nil, fmt.Errorf("the sealed data is %d bytes, not the %d of a node key's seeds", len(secret), seedsSize)
	}
	key := identity.KeyFromSeeds(identity.KindNode, [mldsa65.SeedSize]byte(secret[:mldsa65.SeedSize]), [ed25519.SeedSize]byte(secret[mldsa65.SeedSize:]))
	if id := key.Public().ID(identity.NodePrefix); id != kf.NodeID {
		return nil, fmt.Errorf("the unsealed seeds are node %s's, but the key file names %s", id, kf.NodeID)
	}
	return key, nil
}
