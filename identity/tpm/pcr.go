package tpm

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// PCRs are read, sealed to and quoted in the SHA-256 bank only: every TPM 2.0 made
// for current platforms has it, and SHA-1 PCRs can be forged by collision.

// NumPCRs is the number of PCRs a PC-client TPM has (indices 0–23).
const NumPCRs = 24

// quotePCRs are the PCRs a quote covers: the platform's boot measurements (firmware,
// option ROMs, boot loader and Secure Boot policy), so a verifier can log and later
// pin them.
func quotePCRs() []int { return []int{0, 1, 2, 3, 4, 5, 6, 7} }

// ParsePCRs parses a PCR list such as "0,7" (the CLI's --tpm-pcrs) into ascending
// indices, refusing duplicates and indices outside 0–23.
func ParsePCRs(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("PCR %q is not a number", f)
		}
		out = append(out, n)
	}
	slices.Sort(out)
	if err := checkPCRs(out); err != nil {
		return nil, err
	}
	return out, nil
}

// checkPCRs requires strictly ascending indices within 0–23.
func checkPCRs(pcrs []int) error {
	for i, p := range pcrs {
		if p < 0 || p >= NumPCRs {
			return fmt.Errorf("PCR %d is not one of 0–%d", p, NumPCRs-1)
		}
		if i > 0 && p <= pcrs[i-1] {
			return fmt.Errorf("PCR list %v is not strictly ascending (or names a PCR twice)", pcrs)
		}
	}
	return nil
}

func pcrSelection(pcrs []int) tpm2.TPMLPCRSelection {
	idx := make([]uint, len(pcrs))
	for i, p := range pcrs {
		idx[i] = uint(p)
	}
	return tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{
		{Hash: tpm2.TPMAlgSHA256, PCRSelect: tpm2.PCClientCompatible.PCRs(idx...)},
	}}
}

// readPCRs reads the SHA-256 values of pcrs (ascending). A TPM returns at most eight
// PCRs per TPM2_PCR_Read, and says which ones; the rest are asked for again.
func readPCRs(tr transport.TPM, pcrs []int) ([][]byte, error) {
	values := make(map[int][]byte, len(pcrs))
	for pending := slices.Clone(pcrs); len(pending) > 0; {
		rsp, err := tpm2.PCRRead{PCRSelectionIn: pcrSelection(pending)}.Execute(tr)
		if err != nil {
			return nil, fmt.Errorf("reading PCRs %v: %v", pending, err)
		}
		got := selected(rsp.PCRSelectionOut)
		if len(got) == 0 || len(got) != len(rsp.PCRValues.Digests) {
			return nil, fmt.Errorf("reading PCRs %v: the TPM returned no SHA-256 values (is the SHA-256 PCR bank active?)", pending)
		}
		for i, p := range got {
			if !slices.Contains(pending, p) || len(rsp.PCRValues.Digests[i].Buffer) != sha256.Size {
				return nil, fmt.Errorf("reading PCRs %v: the TPM answered for PCR %d", pending, p)
			}
			values[p] = rsp.PCRValues.Digests[i].Buffer
		}
		pending = slices.DeleteFunc(pending, func(p int) bool { return values[p] != nil })
	}
	out := make([][]byte, len(pcrs))
	for i, p := range pcrs {
		out[i] = values[p]
	}
	return out, nil
}

// selected lists the SHA-256 PCRs a selection names, ascending.
func selected(sel tpm2.TPMLPCRSelection) []int {
	var out []int
	for _, s := range sel.PCRSelections {
		if s.Hash != tpm2.TPMAlgSHA256 {
			continue
		}
		for i, b := range s.PCRSelect {
			for bit := range 8 {
				if b&(1<<bit) != 0 {
					out = append(out, i*8+bit)
				}
			}
		}
	}
	return out
}

// pcrDigest is what TPM2_PolicyPCR and TPM2_Quote compute over PCR values: SHA-256
// of their concatenation, in ascending index order.
func pcrDigest(values [][]byte) []byte {
	h := sha256.New()
	for _, v := range values {
		h.Write(v)
	}
	return h.Sum(nil)
}

// pcrPolicy is the policy digest of TPM2_PolicyPCR(pcrs, values) in a fresh session:
// the authPolicy of a key sealed to those values.
func pcrPolicy(pcrs []int, values [][]byte) ([]byte, error) {
	calc, err := tpm2.NewPolicyCalculator(tpm2.TPMAlgSHA256)
	if err != nil {
		return nil, err
	}
	cmd := tpm2.PolicyPCR{PcrDigest: tpm2.TPM2BDigest{Buffer: pcrDigest(values)}, Pcrs: pcrSelection(pcrs)}
	if err := cmd.Update(calc); err != nil {
		return nil, err
	}
	return calc.Hash().Digest, nil
}

// changedPCRs names the PCRs whose current value differs from the sealed one.
func changedPCRs(pcrs []int, sealed, now [][]byte) []int {
	var out []int
	for i, p := range pcrs {
		if !bytes.Equal(sealed[i], now[i]) {
			out = append(out, p)
		}
	}
	return out
}
