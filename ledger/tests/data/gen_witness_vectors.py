#!/usr/bin/env python3
"""Generates witness_vectors.json: C2SP tlog-cosignature (cosignature/v1, Ed25519,
type 0x04) vectors and tlog-policy evaluation cases.

A second implementation on purpose: Ed25519 comes from pyca/cryptography
(OpenSSL), SHA-256 and base64 from the Python standard library, and the formats
are written from the spec text (c2sp.org/signed-note, tlog-checkpoint,
tlog-cosignature, tlog-policy), not from the Rust code. Ed25519 signing is
deterministic (RFC 8032), so the Rust signer must reproduce every valid line
byte for byte.

Run: python3 ledger/tests/data/gen_witness_vectors.py > ledger/tests/data/witness_vectors.json
"""

import base64
import hashlib
import json
import struct

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

b64 = lambda b: base64.b64encode(b).decode()
DASH = "\u2014"
MAX_TIME = 2**63 - 1


class Key:
    def __init__(self, name, seed_string, sig_type):
        self.name, self.seed_string, self.type = name, seed_string, sig_type
        self.priv = Ed25519PrivateKey.from_private_bytes(
            hashlib.sha256(seed_string.encode()).digest()
        )
        self.pub = self.priv.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.key_id = key_id(name, sig_type, self.pub)

    def vkey(self):
        return f"{self.name}+{self.key_id.hex()}+{b64(bytes([self.type]) + self.pub)}"

    def json(self):
        return {
            "name": self.name,
            "seed_string": self.seed_string,
            "signature_type": self.type,
            "public_key": b64(self.pub),
            "key_id": self.key_id.hex(),
            "vkey": self.vkey(),
        }


def key_id(name, sig_type, pub):
    return hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + pub).digest()[:4]


def line(name, kid, payload):
    return f"{DASH} {name} {b64(kid + payload)}"


def cosign_message(timestamp, text, time_text=None):
    t = str(timestamp) if time_text is None else time_text
    return f"cosignature/v1\ntime {t}\n".encode() + text.encode()


def cosign(w, text, timestamp):
    sig = w.priv.sign(cosign_message(timestamp, text))
    return line(w.name, w.key_id, struct.pack(">Q", timestamp) + sig)


def log_sign(log, text):
    return line(log.name, log.key_id, log.priv.sign(text.encode()))


LOG = Key("example.com/tlog-vectors", "tlog test vectors v1", 0x01)
WITNESSES = [
    Key("witness.example/a", "lineage witness vectors a", 0x04),
    Key("witness.example/b", "lineage witness vectors b", 0x04),
    Key("oid/1.3.6.1.4.1.99999.1", "lineage witness vectors c", 0x04),
]
ORIGIN = LOG.name
CHECKPOINTS = {
    # Roots from tests/data/vectors/roots.json.
    "empty": f"{ORIGIN}\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
    "size-300": f"{ORIGIN}\n300\nhOE+weA3FVrmGXV1mbLNIa2lpWXg/ZsxOcDDxsG4rak=\n",
    "extension": f"{ORIGIN}\n300\nhOE+weA3FVrmGXV1mbLNIa2lpWXg/ZsxOcDDxsG4rak=\nx-lineage: an extension line\n",
}
TIMES = [1, 1679315147, MAX_TIME]

valid = []
for cp_name, text in CHECKPOINTS.items():
    for wi, w in enumerate(WITNESSES):
        for t in TIMES:
            valid.append(
                {
                    "checkpoint": cp_name,
                    "witness": wi,
                    "timestamp": t,
                    "signed_message": cosign_message(t, text).decode(),
                    "line": cosign(w, text, t),
                }
            )

w = WITNESSES[0]
text = CHECKPOINTS["size-300"]
T = 1679315147
good_sig = w.priv.sign(cosign_message(T, text))
ts = struct.pack(">Q", T)
invalid = [
    {
        "name": "timestamp-changed",
        "reason": "the timestamp is signed: T+1 with the signature of T",
        "error": "invalid-signature",
        "line": line(w.name, w.key_id, struct.pack(">Q", T + 1) + good_sig),
    },
    {
        "name": "timestamp-above-2^63-1",
        "reason": "honestly signed at 2^63, which the spec forbids",
        "error": "timestamp-out-of-range",
        "line": line(
            w.name,
            w.key_id,
            struct.pack(">Q", 2**63) + w.priv.sign(cosign_message(2**63, text)),
        ),
    },
    {
        "name": "no-header",
        "reason": "Ed25519 over the checkpoint text alone, as a type 0x01 note signature",
        "error": "invalid-signature",
        "line": line(w.name, w.key_id, ts + w.priv.sign(text.encode())),
    },
    {
        "name": "leading-zero-time",
        "reason": "the time line was written with a leading zero",
        "error": "invalid-signature",
        "line": line(
            w.name, w.key_id, ts + w.priv.sign(cosign_message(T, text, "0" + str(T)))
        ),
    },
    {
        "name": "other-checkpoint",
        "reason": "a valid cosignature of the empty checkpoint",
        "error": "invalid-signature",
        "line": cosign(w, CHECKPOINTS["empty"], T),
    },
    {
        "name": "truncated",
        "reason": "71 bytes after the key ID",
        "error": "wrong-length",
        "line": line(w.name, w.key_id, (ts + good_sig)[:71]),
    },
    {
        "name": "no-timestamp",
        "reason": "a bare 64-byte signature after the key ID",
        "error": "wrong-length",
        "line": line(w.name, w.key_id, good_sig),
    },
    {
        "name": "type-01-key-id",
        "reason": "the key ID hashed with type 0x01: not this cosigner's line",
        "error": "not-this-cosigner",
        "line": line(w.name, key_id(w.name, 0x01, w.pub), ts + good_sig),
    },
    {
        "name": "other-name",
        "reason": "the key name of witness b with witness a's key ID",
        "error": "not-this-cosigner",
        "line": line(WITNESSES[1].name, w.key_id, ts + good_sig),
    },
]

# A tlog-policy file over these keys and notes checked against it.
POLICY = (
    "# witness_vectors.json policy: the log and any two of the three witnesses\n"
    f"log {LOG.vkey()}\n"
    f"witness A {WITNESSES[0].vkey()} https://a.example/witness\n"
    f"witness B {WITNESSES[1].vkey()}\n"
    f"witness C {WITNESSES[2].vkey()}\n"
    "group two-of-three 2 A B C\n"
    "quorum two-of-three\n"
)
STRANGER = Key("witness.example/stranger", "lineage witness vectors stranger", 0x04)


def note(text, lines):
    return text + "\n" + "".join(l + "\n" for l in lines)


text = CHECKPOINTS["size-300"]
logline = log_sign(LOG, text)
c = lambda i, t=T: cosign(WITNESSES[i], text, t)
bad_b = line(
    WITNESSES[1].name,
    WITNESSES[1].key_id,
    struct.pack(">Q", T + 1) + WITNESSES[1].priv.sign(cosign_message(T, text)),
)
policy_cases = [
    {"name": "a-and-b", "note": note(text, [logline, c(0), c(1)]), "cosigned": ["A", "B"], "quorum_met": True},
    {"name": "all-three-in-any-order", "note": note(text, [c(2), c(0), logline, c(1)]), "cosigned": ["A", "B", "C"], "quorum_met": True},
    {"name": "only-c", "note": note(text, [logline, c(2)]), "cosigned": ["C"], "quorum_met": False},
    {"name": "stranger-ignored", "note": note(text, [logline, cosign(STRANGER, text, T), c(1)]), "cosigned": ["B"], "quorum_met": False},
    {"name": "a-twice-latest-time", "note": note(text, [logline, c(0, T), c(0, T + 60), c(2)]), "cosigned": ["A", "C"], "cosigned_times": [T + 60, T], "quorum_met": True},
    {"name": "bad-known-cosignature", "note": note(text, [logline, c(0), c(2), bad_b]), "error": "cosignature", "error_witness": "B"},
    {"name": "no-log-signature", "note": note(text, [c(0), c(1)]), "error": "no-log-signature"},
]

print(
    json.dumps(
        {
            "format": "lineage-witness-vectors/1",
            "generator": "ledger/tests/data/gen_witness_vectors.py (pyca/cryptography Ed25519)",
            "log": LOG.json(),
            "witnesses": [k.json() for k in WITNESSES],
            "checkpoints": CHECKPOINTS,
            "cosignatures": valid,
            "invalid_cosignatures": {"checkpoint": "size-300", "witness": 0, "cases": invalid},
            "policy": POLICY,
            "policy_cases": policy_cases,
        },
        indent=1,
        ensure_ascii=False,
    )
)
