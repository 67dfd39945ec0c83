"""Certificates for the TLS tests, made on the spot with `cryptography` (no private key is ever
checked in): a CA, a server certificate for 127.0.0.1 it signs, a client certificate it signs,
and a client certificate of another, unknown CA."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Pem:
    cert: bytes
    key: bytes


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(k: ec.EllipticCurvePrivateKey) -> bytes:
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def ca(cn: str) -> tuple[Pem, ec.EllipticCurvePrivateKey, x509.Certificate]:
    k = _key()
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(k.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(k, hashes.SHA256()))
    return Pem(cert.public_bytes(serialization.Encoding.PEM), _key_pem(k)), k, cert


def leaf(cn: str, issuer_key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate,
         server: bool) -> Pem:
    k = _key()
    now = dt.datetime.now(dt.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(issuer.subject)
         .public_key(k.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(minutes=5))
         .not_valid_after(now + dt.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.ExtendedKeyUsage(
             [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
             critical=False))
    if server:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
    cert = b.sign(issuer_key, hashes.SHA256())
    return Pem(cert.public_bytes(serialization.Encoding.PEM), _key_pem(k))


@dataclass(frozen=True)
class Pki:
    ca: Pem
    server: Pem
    client: Pem
    rogue_ca: Pem
    rogue_client: Pem

    def write(self, d: Path) -> dict[str, Path]:
        """As files (for `tandem api` and grpcurl), private keys readable by the owner only."""
        out: dict[str, Path] = {}
        for name, pem in (("ca", self.ca), ("server", self.server), ("client", self.client)):
            out[f"{name}.crt"] = d / f"{name}.crt"
            out[f"{name}.crt"].write_bytes(pem.cert)
            out[f"{name}.key"] = d / f"{name}.key"
            out[f"{name}.key"].touch(mode=0o600)
            out[f"{name}.key"].write_bytes(pem.key)
        return out


def make_pki() -> Pki:
    ca_pem, ca_key, ca_cert = ca("tandem test CA")
    rogue_pem, rogue_key, rogue_cert = ca("someone else's CA")
    return Pki(ca_pem, leaf("127.0.0.1", ca_key, ca_cert, server=True),
               leaf("oss-acme", ca_key, ca_cert, server=False), rogue_pem,
               leaf("oss-rogue", rogue_key, rogue_cert, server=False))
