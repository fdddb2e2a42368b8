"""Our witness against an independent client: aics-witness's WitnessClient (the log
side of c2sp.org/tlog-witness, in Python) and aics_tlog's tree and checkpoint code.

Run by tests/witness.rs with the venv's python:

    aics_client.py WITNESS_URL WITNESS_VKEY ORIGIN LOG_SEED_HEX STATE_DIR

The witness must trust the log key derived from LOG_SEED_HEX for ORIGIN (the Rust
test adds it with `lineage witness add-log`). Prints one "ok: ..." line per check
and exits non-zero on the first failure.
"""

import http.client
import sys
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aics_tlog import Checkpoint, MerkleTree, parse_note, parse_vkey, sign_checkpoint, verify_cosignature
from aics_witness.feeder import WitnessClient, WitnessRejected, merge_cosignatures


def main() -> None:
    url, witness_vkey, origin, seed_hex, state_dir = sys.argv[1:6]
    state = Path(state_dir)
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex))
    vkey = parse_vkey(witness_vkey)

    honest = MerkleTree(f"leaf {i}".encode() for i in range(32))

    def note(tree: MerkleTree, size: int) -> bytes:
        cp = Checkpoint(origin=origin, size=size, root=tree.root(size))
        return sign_checkpoint(cp, key, origin).to_bytes()

    def check_line(lines: str, tree: MerkleTree, size: int) -> None:
        sigs = parse_note(note(tree, size) + lines.encode()).signatures
        mine = [s for s in sigs if s.name == vkey.name and s.key_id == vkey.key_id]
        assert len(mine) == 1, lines
        assert verify_cosignature(mine[0].signature, vkey.name, vkey.public_key, origin, size, tree.root(size), ()), lines

    # From nothing, then from the size it holds, with the client's own proofs.
    with WitnessClient(url, witness_vkey, state_path=state / "a.json") as client:
        lines = client.submit(note(honest, 5), honest.consistency_proof)
        check_line(lines, honest, 5)
        lines = client.submit(note(honest, 9), honest.consistency_proof)
        check_line(lines, honest, 9)
        merged = merge_cosignatures(note(honest, 9), lines)
        assert merged.count("\u2014".encode()) == 2
    print("ok: cosigned 5 then 9, cosignatures verify with aics_tlog")

    # A client that knows nothing starts from 0: our 409 (text/x.tlog.size) names 9,
    # and it retries from there.
    with WitnessClient(url, witness_vkey, state_path=state / "b.json") as client:
        lines = client.submit(note(honest, 14), honest.consistency_proof)
        check_line(lines, honest, 14)
        assert client.known_sizes[origin] == 14
    print("ok: 409 from a fresh client, retried from the witness's size, cosigned 14")

    # The same key, another history of the same size: refused (422, or 409 naming
    # that size for a v1.0.0 witness): the client reports it as rejected.
    forked = MerkleTree([f"leaf {i}".encode() for i in range(7)] + [f"fork {i}".encode() for i in range(7, 32)])
    assert forked.root(14) != honest.root(14)
    with WitnessClient(url, witness_vkey, state_path=state / "c.json") as client:
        try:
            client.submit(note(forked, 14), forked.consistency_proof)
        except WitnessRejected as e:
            assert "422" in str(e) or "409" in str(e), e
        else:
            raise AssertionError("a forked checkpoint was cosigned")
    print("ok: forked checkpoint at the witness's size refused")

    # Raw requests: unknown origin 404, garbage 400.
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    other = Checkpoint(origin="example.com/unknown", size=1, root=honest.root(1))
    body = b"old 0\n\n" + sign_checkpoint(other, key, "example.com/unknown").to_bytes()
    for payload, want in ((body, 404), (b"not a request\n", 400)):
        conn.request("POST", "/add-checkpoint", body=payload)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == want, (resp.status, want)
    conn.close()
    print("ok: 404 unknown origin, 400 malformed")


if __name__ == "__main__":
    main()
