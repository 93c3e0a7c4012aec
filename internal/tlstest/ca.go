// SPDX-License-Identifier: MIT

package tlstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// CA is a test certificate authority.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	// PEM is the CA certificate, PEM-encoded; File holds it (for
	// SSL_CERT_FILE or a server's trust bundle).
	PEM  []byte
	File string
	// Pool trusts this CA only.
	Pool *x509.CertPool
}

// NewCA makes a CA named name and writes its certificate to dir/<name>.pem
// (dir "": kept in memory only, File empty).
func NewCA(dir, name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("CA %s: key: %w", name, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"dnstun tests"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("CA %s: certificate: %w", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("CA %s: %w", name, err)
	}
	ca := &CA{Cert: cert, Key: key, PEM: pemBlock("CERTIFICATE", der), Pool: x509.NewCertPool()}
	ca.Pool.AddCert(cert)
	if dir == "" {
		return ca, nil
	}
	ca.File = filepath.Join(dir, name+".pem")
	if err := os.WriteFile(ca.File, ca.PEM, 0o644); err != nil {
		return nil, fmt.Errorf("CA %s: %w", name, err)
	}
	return ca, nil
}

// Leaf is a server certificate issued by a CA.
type Leaf struct {
	Cert *x509.Certificate
	// CertFile holds the certificate, KeyFile its private key (PKCS #8),
	// both PEM, as unbound's tls-service-pem and tls-service-key want.
	CertFile, KeyFile string
	// TLS is the same for a Go server.
	TLS tls.Certificate
	// Pin is the SHA-256 of the certificate's SubjectPublicKeyInfo, and
	// PinBase64 its standard base64 (the #pin-sha256= form).
	Pin       [32]byte
	PinBase64 string
}

// Issue makes a server certificate for the DNS names and IP addresses
// given, and writes it to dir/<base>.pem and dir/<base>.key (dir "": kept
// in memory only, CertFile and KeyFile empty).
func (ca *CA) Issue(dir, base string, names []string, ips []netip.Addr) (*Leaf, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: key: %w", base, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: base},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     names,
	}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(ip.AsSlice()))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", base, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", base, err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: key: %w", base, err)
	}
	l := &Leaf{
		Cert: cert,
		TLS:  tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert},
		Pin:  sha256.Sum256(cert.RawSubjectPublicKeyInfo),
	}
	l.PinBase64 = base64.StdEncoding.EncodeToString(l.Pin[:])
	if dir == "" {
		return l, nil
	}
	l.CertFile, l.KeyFile = filepath.Join(dir, base+".pem"), filepath.Join(dir, base+".key")
	if err := os.WriteFile(l.CertFile, pemBlock("CERTIFICATE", der), 0o644); err != nil {
		return nil, fmt.Errorf("certificate %s: %w", base, err)
	}
	if err := os.WriteFile(l.KeyFile, pemBlock("PRIVATE KEY", pkcs8), 0o600); err != nil {
		return nil, fmt.Errorf("certificate %s: %w", base, err)
	}
	return l, nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported systems
	}
	return n
}
