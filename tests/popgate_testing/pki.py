"""A test CA and leaf certificates made with the `openssl` CLI in a temp
dir: CA-signed ECDSA/RSA leaves with SANs, self-signed ones, and expired
ones (`openssl ca` with -startdate/-enddate in the past: OpenSSL 3.0's
`x509` has no -not_before); the demo certificates; what a certificate
says."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from typing import Sequence

from .paths import OPENSSL, REPO, make_tempdir, require_openssl


def _run(argv: Sequence[str], timeout: float = 60.0, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(list(argv), capture_output=True, timeout=timeout, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}): "
                           f"{r.stderr.decode('utf-8', 'replace')[-1500:]}")
    return r


@dataclasses.dataclass
class CertKey:
    cert: str
    key: str
    subject_cn: str

    def pair(self) -> dict:
        return {"cert": self.cert, "key": self.key}


class Pki:
    """A test CA plus leaves, all files in one temp dir (cleanup() removes it)."""

    def __init__(self, ca_cn: str = "popgate-it test CA"):
        require_openssl()
        self.dir = make_tempdir("pki")
        self._n = 0
        self.ca = self._make_ca(ca_cn)
        self.ca_file = self.ca.cert

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self):  # for harness.ModuleResources.add
        return self

    def _path(self, stem: str) -> str:
        return os.path.join(self.dir, stem)

    @staticmethod
    def _newkey_args(key_type: str) -> list[str]:
        if key_type == "ec":
            return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        if key_type == "rsa":
            return ["-newkey", "rsa:2048"]
        raise ValueError(key_type)

    def _make_ca(self, cn: str) -> CertKey:
        cert, key = self._path("ca.pem"), self._path("ca.key")
        _run([OPENSSL, "req", "-x509", *self._newkey_args("ec"), "-nodes",
              "-keyout", key, "-out", cert, "-days", "3650", "-subj", f"/CN={cn}",
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        return CertKey(cert, key, cn)

    def _ext_file(self, stem: str, sans: Sequence[str]) -> str:
        path = self._path(stem + ".ext")
        with open(path, "w") as f:
            f.write("basicConstraints = critical,CA:FALSE\n"
                    "keyUsage = critical,digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage = serverAuth,clientAuth\n"
                    "subjectKeyIdentifier = hash\n"
                    "authorityKeyIdentifier = keyid\n")
            if sans:
                f.write("subjectAltName = " + ",".join(_san(s) for s in sans) + "\n")
        return path

    def leaf(self, cn: str, sans: Sequence[str], key_type: str = "ec",
             expired: bool = False) -> CertKey:
        """A leaf signed by this CA. sans: DNS names and IP addresses."""
        self._n += 1
        stem = f"leaf{self._n}-{re.sub(r'[^a-zA-Z0-9.-]', '_', cn)}"
        cert, key, csr = self._path(stem + ".pem"), self._path(stem + ".key"), \
            self._path(stem + ".csr")
        _run([OPENSSL, "req", "-new", *self._newkey_args(key_type), "-nodes",
              "-keyout", key, "-out", csr, "-subj", f"/CN={cn}"])
        ext = self._ext_file(stem, sans)
        if not expired:
            _run([OPENSSL, "x509", "-req", "-in", csr, "-CA", self.ca.cert,
                  "-CAkey", self.ca.key, "-set_serial", str(1000 + self._n),
                  "-days", "825", "-sha256", "-extfile", ext, "-out", cert])
        else:
            _run([OPENSSL, "ca", "-batch", "-config", self._ca_config(),
                  "-startdate", "20000101000000Z", "-enddate", "20010101000000Z",
                  "-extfile", ext, "-notext", "-in", csr, "-out", cert])
        os.chmod(key, 0o644)  # Dovecot's config reader runs as root; fine either way
        return CertKey(cert, key, cn)

    def self_signed(self, cn: str, sans: Sequence[str], key_type: str = "ec") -> CertKey:
        """Signed by nobody (its own key): unknown to every verifier."""
        self._n += 1
        stem = f"self{self._n}-{re.sub(r'[^a-zA-Z0-9.-]', '_', cn)}"
        cert, key = self._path(stem + ".pem"), self._path(stem + ".key")
        args = [OPENSSL, "req", "-x509", *self._newkey_args(key_type), "-nodes",
                "-keyout", key, "-out", cert, "-days", "825", "-subj", f"/CN={cn}"]
        if sans:
            args += ["-addext", "subjectAltName=" + ",".join(_san(s) for s in sans)]
        _run(args)
        os.chmod(key, 0o644)
        return CertKey(cert, key, cn)

    def _ca_config(self) -> str:
        d = self._path("ca-db")
        if not os.path.isdir(d):
            os.makedirs(os.path.join(d, "new"))
            open(os.path.join(d, "index.txt"), "w").close()
            with open(os.path.join(d, "serial"), "w") as f:
                f.write("5000\n")
        conf = os.path.join(d, "ca.cnf")
        with open(conf, "w") as f:
            f.write(f"""[ ca ]
default_ca = test_ca
[ test_ca ]
database = {d}/index.txt
new_certs_dir = {d}/new
serial = {d}/serial
certificate = {self.ca.cert}
private_key = {self.ca.key}
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
[ policy_any ]
commonName = supplied
""")
        return conf


def _san(s: str) -> str:
    if re.fullmatch(r"[0-9.]+|[0-9a-fA-F:]+:[0-9a-fA-F:]*", s):
        return f"IP:{s}"
    return f"DNS:{s}"


def demo_certs(dest: str) -> tuple[CertKey, CertKey]:
    """scripts/make-demo-certs.sh into dest: (ECDSA, RSA), self-signed."""
    _run(["bash", os.path.join(REPO, "scripts", "make-demo-certs.sh"), dest])
    return (CertKey(os.path.join(dest, "ecdsa.pem"), os.path.join(dest, "ecdsa.key"),
                    "popgate demo (ECDSA)"),
            CertKey(os.path.join(dest, "rsa.pem"), os.path.join(dest, "rsa.key"),
                    "popgate demo (RSA)"))


def cert_info(pem: bytes) -> dict:
    """subject (one line), CN, SANs and key type of a PEM/DER certificate."""
    inform = "PEM" if pem.lstrip().startswith(b"-----BEGIN") else "DER"
    r = _run([OPENSSL, "x509", "-inform", inform, "-noout", "-subject",
              "-ext", "subjectAltName", "-text"], input=pem)
    text = r.stdout.decode("utf-8", "replace")
    subject = text.splitlines()[0]
    m = re.search(r"CN\s*=\s*([^,/\n]+)", subject)
    sans = re.findall(r"(?:DNS|IP Address):([^,\s]+)", text.split("Certificate:")[0])
    key = "ec" if "id-ecPublicKey" in text else "rsa" if "rsaEncryption" in text else "?"
    return {"subject": subject, "cn": m.group(1).strip() if m else "",
            "sans": sans, "key": key}
