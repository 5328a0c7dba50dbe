"""Client side of nvhttp and GameStream pairing, as stock Moonlight clients do it.

Follows moonlight-qt (nvhttp.cpp, nvpairingmanager.cpp, identitymanager.cpp); see
docs/protocol/gamestream-session-setup.md sections 2-4 for the protocol.
"""

from __future__ import annotations

import datetime as dt
import http.client
import os
import secrets
import socket
import ssl
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.x509.oid import NameOID

DEVICE_NAME = "roth"  # what moonlight-qt always sends as devicename
CLIENT_CN = "NVIDIA GameStream Client"


# ---------------------------------------------------------------- crypto primitives ----
def sha256(data: bytes) -> bytes:
    h = hashes.Hash(hashes.SHA256())
    h.update(data)
    return h.finalize()


def aes_key(salt: bytes, pin: str) -> bytes:
    """K = SHA-256(salt || PIN)[0..16]"""
    return sha256(salt + pin.encode("ascii"))[:16]


def aes_ecb_encrypt(key: bytes, data: bytes) -> bytes:
    if len(data) % 16:
        raise ValueError("AES-ECB input must be a multiple of 16 bytes (no padding)")
    e = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return e.update(data) + e.finalize()


def aes_ecb_decrypt(key: bytes, data: bytes) -> bytes:
    if len(data) % 16:
        raise ValueError("AES-ECB input must be a multiple of 16 bytes (no padding)")
    d = Cipher(algorithms.AES(key), modes.ECB()).decryptor()
    return d.update(data) + d.finalize()


def cert_signature(cert_pem: bytes) -> bytes:
    """Raw signatureValue bytes of a certificate (what X509_get0_signature returns)."""
    return x509.load_pem_x509_certificate(cert_pem).signature


def cert_der(cert_pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)


def sign_sha256(key_pem: bytes, data: bytes) -> bytes:
    key = serialization.load_pem_private_key(key_pem, password=None)
    return key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def verify_sha256(cert_pem: bytes, data: bytes, signature: bytes) -> bool:
    pub = x509.load_pem_x509_certificate(cert_pem).public_key()
    try:
        pub.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        return True
    except (InvalidSignature, ValueError):
        return False


def make_self_signed(cn: str, serial: int = 0) -> tuple[bytes, bytes]:
    """(cert PEM, key PEM): RSA-2048, X.509 v3, SHA-256, valid 20 years."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(key.public_key())
               .not_valid_before(now).not_valid_after(now + dt.timedelta(days=20 * 365)))
    try:
        cert = builder.serial_number(serial).sign(key, hashes.SHA256())
    except ValueError:  # some versions of cryptography refuse serial 0
        cert = builder.serial_number(max(serial, 1)).sign(key, hashes.SHA256())
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM,
                              serialization.PrivateFormat.TraditionalOpenSSL,
                              serialization.NoEncryption()))


# ------------------------------------------------------------------- client identity ----
@dataclass
class ClientIdentity:
    """A Moonlight client's persistent identity: uniqueid plus certificate and key."""

    uniqueid: str
    cert_pem: bytes
    key_pem: bytes
    directory: Path

    @property
    def cert_path(self) -> Path:
        return self.directory / "client-cert.pem"

    @property
    def key_path(self) -> Path:
        return self.directory / "client-key.pem"

    @classmethod
    def create(cls, directory: Path | str) -> "ClientIdentity":
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        cert, key = make_self_signed(CLIENT_CN, serial=0)
        # moonlight-qt: a random 64-bit number, lowercase hex without leading zeros
        ident = cls(format(secrets.randbits(64) or 1, "x"), cert, key, d)
        ident.cert_path.write_bytes(cert)
        ident.key_path.write_bytes(key)
        os.chmod(ident.key_path, 0o600)
        (d / "uniqueid").write_text(ident.uniqueid)
        return ident

    @classmethod
    def load(cls, directory: Path | str) -> "ClientIdentity":
        d = Path(directory)
        return cls((d / "uniqueid").read_text().strip(), (d / "client-cert.pem").read_bytes(),
                   (d / "client-key.pem").read_bytes(), d)

    @classmethod
    def load_or_create(cls, directory: Path | str) -> "ClientIdentity":
        d = Path(directory)
        return cls.load(d) if (d / "uniqueid").exists() else cls.create(d)


# ------------------------------------------------------------------------ replies ----
class NvHttpError(RuntimeError):
    pass


class XmlStatusError(NvHttpError):
    def __init__(self, path: str, status: int, message: str):
        super().__init__(f"{path}: status_code={status} {message!r}")
        self.path, self.status, self.message = path, status, message


@dataclass
class Reply:
    path: str
    http_status: int
    body: bytes
    root: ET.Element

    @property
    def status_code(self) -> int:
        return int(self.root.get("status_code", "0"))

    @property
    def status_message(self) -> str:
        return self.root.get("status_message", "")

    def text(self, tag: str, default: str | None = None) -> str | None:
        el = self.root.find(tag)
        return default if el is None or el.text is None else el.text

    def ok(self) -> "Reply":
        if self.status_code != 200:
            raise XmlStatusError(self.path, self.status_code, self.status_message)
        return self


def parse_reply(path: str, http_status: int, body: bytes) -> Reply:
    try:
        root = ET.fromstring(body)
    except ET.ParseError as e:
        raise NvHttpError(f"{path}: reply is not XML ({e}): {body[:200]!r}") from None
    if root.tag != "root":
        found = root.find(".//root")
        if found is None:
            raise NvHttpError(f"{path}: malformed XML (missing root element)")
        root = found
    return Reply(path, http_status, body, root)


# ---------------------------------------------------------------------- pairing ----
class PairingError(NvHttpError):
    pass


class IncorrectPin(PairingError):
    pass


class MitmDetected(PairingError):
    pass


class AlreadyInProgress(PairingError):
    pass


@dataclass
class App:
    title: str
    id: int
    hdr: bool = False


@dataclass
class Launch:
    session_url: str
    rikey: bytes
    rikeyid: int
    width: int
    height: int
    fps: int
    reply: Reply


class GameStreamClient:
    """nvhttp client for one host: HTTP for serverinfo/pairing, HTTPS (client cert, pinned
    server cert) for everything that needs authorization."""

    def __init__(self, identity: ClientIdentity, host: str = "127.0.0.1", http_port: int = 47989,
                 https_port: int | None = None, server_cert_pem: bytes | None = None,
                 timeout: float = 10.0):
        self.identity = identity
        self.host = host
        self.http_port = http_port
        self.https_port = https_port if https_port is not None else http_port - 5
        self.server_cert_pem = server_cert_pem
        self.timeout = timeout

    # -- transport
    def query(self, params: list[tuple[str, str]] | None = None) -> str:
        base = [("uniqueid", self.identity.uniqueid), ("uuid", uuid.uuid4().hex)]
        return urllib.parse.urlencode(base + list(params or []), safe=":")

    def http_get(self, path: str, params=None, timeout: float | None = -1.0) -> Reply:
        host = f"[{self.host}]" if ":" in self.host else self.host
        url = f"http://{host}:{self.http_port}{path}?{self.query(params)}"
        t = self.timeout if timeout == -1.0 else timeout
        r = requests.get(url, timeout=t, headers={"Connection": "close"})
        return parse_reply(path, r.status_code, r.content)

    def _tls_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # the host's cert is pinned below instead
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(self.identity.cert_path), str(self.identity.key_path))
        return ctx

    def https_raw(self, path: str, params=None, timeout: float | None = None,
                  pin: bool = True) -> tuple[int, bytes, bytes]:
        """(HTTP status, body, server cert DER) of an HTTPS GET with the client cert."""
        conn = http.client.HTTPSConnection(self.host, self.https_port,
                                           timeout=timeout or self.timeout,
                                           context=self._tls_context())
        try:
            conn.connect()
            peer = conn.sock.getpeercert(binary_form=True)
            if pin:
                if self.server_cert_pem is None:
                    raise NvHttpError("no pinned server certificate (pair first)")
                if peer != cert_der(self.server_cert_pem):
                    raise NvHttpError("server certificate mismatch: the HTTPS certificate is "
                                      "not the plaincert received while pairing")
            conn.request("GET", f"{path}?{self.query(params)}", headers={"Connection": "close"})
            resp = conn.getresponse()
            return resp.status, resp.read(), peer
        finally:
            conn.close()

    def https_get(self, path: str, params=None, timeout: float | None = None,
                  pin: bool = True) -> Reply:
        status, body, _ = self.https_raw(path, params, timeout, pin)
        return parse_reply(path, status, body)

    def server_cert_der_seen(self) -> bytes:
        """The certificate the HTTPS port presents (no pinning)."""
        return self.https_raw("/serverinfo", pin=False)[2]

    # -- endpoints
    def serverinfo(self, https: bool = False) -> Reply:
        if https:
            return self.https_get("/serverinfo")
        return self.http_get("/serverinfo")

    def unpair(self) -> None:
        try:
            self.http_get("/unpair", timeout=5)
        except Exception:
            pass

    def pair(self, pin: str, stage1_timeout: float | None = 120.0) -> None:
        """Run pairing stages 1-5 like moonlight-qt. Stage 1 blocks until the PIN is entered
        on the host. Raises IncorrectPin, MitmDetected, AlreadyInProgress or PairingError."""
        try:
            self._pair(pin, stage1_timeout)
        except Exception:
            self.unpair()
            raise

    def _pair(self, pin: str, stage1_timeout: float | None) -> None:
        info = self.serverinfo().ok()
        version = info.text("appversion", "") or ""
        try:
            major = int(version.split(".")[0])
        except ValueError:
            raise PairingError(f"unparseable appversion {version!r}") from None
        if major < 7:
            raise PairingError(f"appversion {version!r}: SHA-1 pairing (< 7) is not supported")
        common = [("devicename", DEVICE_NAME), ("updateState", "1")]

        def stage(name: str, params, https: bool = False, timeout=-1.0) -> Reply:
            if https:
                r = self.https_get("/pair", common + params)
            else:
                r = self.http_get("/pair", common + params, timeout=timeout)
            r.ok()
            if r.text("paired") != "1":
                raise PairingError(f"pairing stage {name}: paired={r.text('paired')!r} "
                                   f"({r.status_message!r})")
            return r

        # stage 1: getservercert (blocks until the PIN is entered on the host)
        salt = secrets.token_bytes(16)
        key = aes_key(salt, pin)
        r = stage("getservercert", [("phrase", "getservercert"), ("salt", salt.hex()),
                                    ("clientcert", self.identity.cert_pem.hex())],
                  timeout=stage1_timeout)
        plaincert = r.text("plaincert") or ""
        if not plaincert:
            raise AlreadyInProgress("host answered stage 1 without plaincert "
                                    "(another pairing is in progress)")
        server_cert = bytes.fromhex(plaincert)
        x509.load_pem_x509_certificate(server_cert)  # must parse

        # stage 2: client challenge
        client_challenge = secrets.token_bytes(16)
        r = stage("clientchallenge",
                  [("clientchallenge", aes_ecb_encrypt(key, client_challenge).hex())])
        resp = aes_ecb_decrypt(key, bytes.fromhex(r.text("challengeresponse") or ""))
        if len(resp) < 48:
            raise PairingError(f"challengeresponse too short ({len(resp)} bytes)")
        server_response, server_challenge = resp[:32], resp[32:48]

        # stage 3: server challenge response
        client_secret = secrets.token_bytes(16)
        client_hash = sha256(server_challenge + cert_signature(self.identity.cert_pem) +
                             client_secret)
        r = stage("serverchallengeresp",
                  [("serverchallengeresp", aes_ecb_encrypt(key, client_hash.ljust(32, b"\0")).hex())])
        pairing_secret = bytes.fromhex(r.text("pairingsecret") or "")
        if len(pairing_secret) <= 16:
            raise PairingError("pairingsecret too short")
        server_secret, server_sig = pairing_secret[:16], pairing_secret[16:]
        if not verify_sha256(server_cert, server_secret, server_sig):
            raise MitmDetected("host's signature of its pairing secret does not verify "
                               "against plaincert (MITM detected)")
        expected = sha256(client_challenge + cert_signature(server_cert) + server_secret)
        if expected != server_response:
            raise IncorrectPin("incorrect PIN (server response hash mismatch)")

        # stage 4: client pairing secret
        stage("clientpairingsecret",
              [("clientpairingsecret",
                (client_secret + sign_sha256(self.identity.key_pem, client_secret)).hex())])

        # stage 5: pair challenge over HTTPS, pinning the new server cert
        self.server_cert_pem = server_cert
        https_port = info.text("HttpsPort")
        if https_port and int(https_port) != 0:
            self.https_port = int(https_port)
        try:
            stage("pairchallenge", [("phrase", "pairchallenge")], https=True)
        except Exception:
            self.server_cert_pem = None
            raise

    def applist(self) -> list[App]:
        r = self.https_get("/applist").ok()
        apps = []
        for el in r.root.findall("App"):
            title = el.findtext("AppTitle")
            app_id = el.findtext("ID")
            if title is None or app_id is None:
                raise NvHttpError(f"App element without AppTitle or ID: {ET.tostring(el)!r}")
            apps.append(App(title, int(app_id), el.findtext("IsHdrSupported") == "1"))
        return apps

    def app_id(self, title: str) -> int:
        for app in self.applist():
            if app.title == title:
                return app.id
        raise NvHttpError(f"no app named {title!r} in the app list")

    def launch_params(self, app_id: int, width: int, height: int, fps: int, rikey: bytes,
                      rikeyid: int, extra_query: str = "",
                      surround_audio_info: int = 196610) -> list[tuple[str, str]]:
        return [("appid", str(app_id)), ("mode", f"{width}x{height}x{fps}"),
                ("additionalStates", "1"), ("sops", "0"), ("rikey", rikey.hex()),
                ("rikeyid", str(rikeyid)), ("localAudioPlayMode", "0"),
                ("surroundAudioInfo", str(surround_audio_info)), ("remoteControllersBitmap", "0"),
                ("gcmap", "0"), ("gcpersist", "0")]

    def launch(self, app_id: int, width: int, height: int, fps: int,
               rikey: bytes | None = None, rikeyid: int | None = None,
               library_query: str | None = None, check: bool = True,
               verb: str = "/launch", surround_audio_info: int = 196610) -> Launch:
        """GET /launch (or /resume). `library_query` is LiGetLaunchUrlQueryParameters();
        `surround_audio_info` is `(channelMask << 16) | channelCount` (stereo by default)."""
        rikey = rikey if rikey is not None else secrets.token_bytes(16)
        if rikeyid is None:
            rikeyid = int.from_bytes(secrets.token_bytes(4), "big", signed=True)
        if library_query is None:
            from moonlight import launch_url_query_parameters

            library_query = launch_url_query_parameters()
        params = self.launch_params(app_id, width, height, fps, rikey, rikeyid,
                                    surround_audio_info=surround_audio_info)
        # the library's string is appended verbatim, as moonlight-qt does
        query = self.query(params) + library_query
        conn = http.client.HTTPSConnection(self.host, self.https_port, timeout=120,
                                           context=self._tls_context())
        try:
            conn.connect()
            if self.server_cert_pem is not None and \
                    conn.sock.getpeercert(binary_form=True) != cert_der(self.server_cert_pem):
                raise NvHttpError("server certificate mismatch")
            conn.request("GET", f"{verb}?{query}", headers={"Connection": "close"})
            resp = conn.getresponse()
            reply = parse_reply(verb, resp.status, resp.read())
        finally:
            conn.close()
        if check:
            reply.ok()
            if not reply.text("sessionUrl0"):
                raise NvHttpError(f"{verb}: no sessionUrl0 in {reply.body[:300]!r}")
        return Launch(reply.text("sessionUrl0") or "", rikey, rikeyid, width, height, fps, reply)

    def cancel(self) -> Reply:
        return self.https_get("/cancel", timeout=30)


def wait_for_serverinfo(host: str, port: int, timeout: float) -> bool:
    """True once GET /serverinfo on the HTTP port answers with XML (any status)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            r = requests.get(f"http://{host}:{port}/serverinfo?uniqueid=0&uuid={uuid.uuid4().hex}",
                             timeout=1.0)
            ET.fromstring(r.content)
            return True
        except (requests.RequestException, ET.ParseError, socket.error):
            time.sleep(0.1)
    return False
