"""C2PA test media: a throwaway certificate chain (EC P-256 CA -> end-entity signing cert, made with
`cryptography`) and c2pa-python's Builder signing real MP4s with manifests of a chosen digital source type."""
from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"


@dataclass(frozen=True)
class TestSigner:
    chain_pem: bytes  # end-entity + CA
    key_pem: bytes  # PKCS8


def make_signer(common_name: str = "Vigil Test Signer") -> TestSigner:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Vigil Tests")])

    def certificate(subject: x509.Name, public: ec.EllipticCurvePublicKey, *, is_ca: bool, days: int
                    ) -> x509.Certificate:
        usage = {k: False for k in ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
                                    "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")}
        usage.update(digital_signature=True, key_cert_sign=is_ca, crl_sign=is_ca)
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name).public_key(public)
                   .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
                   .not_valid_after(now + dt.timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(**usage), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False))
        if not is_ca:  # what c2pa-rs asks of a signing certificate: an EKU it accepts, and the issuer's key id
            builder = (builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]),
                                             critical=False)
                       .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                                      critical=False))
        return builder.sign(ca_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name("Vigil Test CA")
    ca = certificate(ca_name, ca_key.public_key(), is_ca=True, days=30)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = certificate(name(common_name), key.public_key(), is_ca=False, days=10)
    pem = serialization.Encoding.PEM
    chain = cert.public_bytes(pem) + ca.public_bytes(pem)
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return TestSigner(chain_pem=chain, key_pem=key_pem)


def sign_mp4(src: Path, dst: Path, signer: TestSigner, *, source_type: str, generator: str = "Vigil Test Generator",
             software_agent: str | None = None) -> Path:
    """Copy ``src`` to ``dst`` with a signed C2PA manifest whose ``c2pa.created`` action has ``source_type``
    (an IPTC digital source type name such as trainedAlgorithmicMedia or digitalCapture)."""
    import c2pa

    action: dict[str, object] = {"action": "c2pa.created", "digitalSourceType": IPTC + source_type}
    if software_agent:
        action["softwareAgent"] = {"name": software_agent}
    manifest = {"claim_generator_info": [{"name": generator, "version": "1.0"}], "title": src.name,
                "format": "video/mp4",
                "assertions": [{"label": "c2pa.actions", "data": {"actions": [action]}}]}
    info = c2pa.C2paSignerInfo(alg=b"es256", sign_cert=signer.chain_pem, private_key=signer.key_pem, ta_url=None)
    with c2pa.Signer.from_info(info) as c2pa_signer, c2pa.Builder(json.dumps(manifest)) as builder:
        with open(src, "rb") as source, open(dst, "w+b") as target:
            builder.sign(c2pa_signer, "video/mp4", source, target)
    return dst


def tamper_mdat(path: Path, dst: Path, n: int = 64) -> Path:
    """A copy of ``path`` with ``n`` bytes inside its ``mdat`` box zeroed (the hashed media changed after signing)."""
    shutil.copyfile(path, dst)
    data = bytearray(dst.read_bytes())
    at = data.find(b"mdat")
    if at < 0:
        raise ValueError(f"{path} has no mdat box")
    start = at + 4 + 512
    data[start:start + n] = bytes(n)
    dst.write_bytes(bytes(data))
    return dst
