// Command vcsim is Tandem's vCenter simulator: govmomi's `simulator` package (pinned in go.mod)
// serving a VPX (vCenter) inventory over https on a loopback port picked at start.
//
// Why our own program rather than `go install .../vcsim@latest`: the module proxy resolves that
// to a 2018 build (v0.18.0) whose SOAP answers pyvmomi 8/9 cannot parse; the simulator package
// of the main govmomi module (v0.52.0) works, so we build a small server on it.
//
// It writes, atomically (temporary file then rename, so a reader never sees half a file):
//   - the SDK URL, with the simulator's login, to -url-file;
//   - the PEM of a certificate generated for this run (self-signed, for 127.0.0.1, ::1 and
//     localhost) to -cert-file, so clients can verify TLS instead of turning verification off.
//
// SIGTERM or SIGINT stops it and removes the model's temporary datastore directories.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/simulator/esx"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on (port 0: picked at start)")
	urlFile := flag.String("url-file", "", "write the SDK URL (with login) to this file")
	certFile := flag.String("cert-file", "", "write the server certificate (PEM) to this file")
	datacenters := flag.Int("dc", 1, "datacenters")
	clusters := flag.Int("cluster", 1, "clusters per datacenter")
	clusterHosts := flag.Int("cluster-hosts", 3, "hosts per cluster")
	standalone := flag.Int("standalone-hosts", 0, "standalone hosts per datacenter")
	datastores := flag.Int("ds", 1, "datastores (mounted on every host)")
	machines := flag.Int("vm", 0, "virtual machines made at start per resource pool")
	hostCPUs := flag.Int("host-cpus", 32, "CPU cores (and threads) of every simulated host")
	hostMemGiB := flag.Int("host-memory-gib", 256, "memory of every simulated host, GiB")
	flag.Parse()

	// govmomi's hosts have 2 cores and 4 GiB: too small for capacity to mean anything, so
	// every host is given the same, larger hardware (the summary and the full hardware info).
	cpus, mem := int16(*hostCPUs), int64(*hostMemGiB)<<30
	esx.HostHardwareInfo.CpuInfo.NumCpuCores, esx.HostHardwareInfo.CpuInfo.NumCpuThreads = cpus, cpus
	esx.HostHardwareInfo.MemorySize = mem
	hw := esx.HostSystem.Summary.Hardware
	hw.NumCpuCores, hw.NumCpuThreads, hw.MemorySize = cpus, cpus, mem

	model := simulator.VPX()
	model.Datacenter = *datacenters
	model.Cluster = *clusters
	model.ClusterHost = *clusterHosts
	model.Host = *standalone
	model.Datastore = *datastores
	model.Machine = *machines
	if err := model.Create(); err != nil {
		fail("creating the model: %v", err)
	}
	defer model.Remove()

	cert, pemBytes, err := selfSigned()
	if err != nil {
		fail("generating a certificate: %v", err)
	}
	model.Service.Listen = &url.URL{Host: *listen}
	model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	server := model.Service.NewServer()
	defer server.Close()

	if *certFile != "" {
		writeAtomic(*certFile, pemBytes)
	}
	if *urlFile != "" {
		writeAtomic(*urlFile, []byte(server.URL.String()+"\n"))
	}
	fmt.Printf("vcsim: listening on %s (pid %d)\n", server.URL.Host, os.Getpid())

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	sig := <-stop
	fmt.Printf("vcsim: %s received, stopping\n", sig)
}

// selfSigned makes a fresh P-256 certificate for the loopback names, valid for a year.
func selfSigned() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"Tandem vcsim"}, CommonName: "127.0.0.1"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pemBytes, nil
}

func writeAtomic(path string, data []byte) {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		fail("writing %s: %v", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		fail("renaming %s: %v", tmp, err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "vcsim: "+format+"\n", args...)
	os.Exit(1)
}
