#!/usr/bin/env python3
"""Independent check of Provenant's ledger hash test vectors.

For every vector: canonical = RFC 8785 (JCS) of `record` without its "hash" member,
hash = SHA-256(b"provenant.ledger.v1\\0" + prev_hash + canonical). Also checks that the vectors
form one chain from 32 zero bytes and that every number is an integer in [0, 2**53 - 1].
Uses only the PyPI `rfc8785` package and the standard library. Exits non-zero on any mismatch.

Usage: check_vectors.py [vectors.json]
"""

import hashlib
import json
import os
import sys

import rfc8785

DOMAIN = b"provenant.ledger.v1\x00"
MAX_INT = 2**53 - 1


def numbers_ok(value):
    if isinstance(value, bool):
        return True
    if isinstance(value, (int, float)):
        return isinstance(value, int) and 0 <= value <= MAX_INT
    if isinstance(value, dict):
        return all(numbers_ok(v) for v in value.values())
    if isinstance(value, list):
        return all(numbers_ok(v) for v in value)
    return True


def check(vector, expected_prev):
    errors = []
    record = vector["record"]
    if not numbers_ok(record):
        errors.append("a number is not an integer in [0, 2^53-1]")
    if vector["prev_hash"] != expected_prev:
        errors.append("prev_hash is not the previous vector's hash")
    if record.get("prev_hash") != vector["prev_hash"] or record.get("hash") != vector["hash"]:
        errors.append("record's prev_hash/hash differ from the vector's")
    body = {k: v for k, v in record.items() if k != "hash"}
    canonical = rfc8785.dumps(body)
    if canonical.hex() != vector["canonical_hex"]:
        errors.append("canonical bytes differ")
    digest = hashlib.sha256(DOMAIN + bytes.fromhex(vector["prev_hash"]) + canonical).hexdigest()
    if digest != vector["hash"]:
        errors.append("hash differs")
    return errors


def main():
    default = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vectors.json")
    path = sys.argv[1] if len(sys.argv) > 1 else default
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    if bytes.fromhex(doc["hash_domain_hex"]) != DOMAIN:
        print("hash_domain_hex is not provenant.ledger.v1\\0")
        return 1
    passed = failed = 0
    prev = "00" * 32
    for vector in doc["vectors"]:
        errors = check(vector, prev)
        if errors:
            failed += 1
            print(f"FAIL {vector['name']}: {'; '.join(errors)}")
        else:
            passed += 1
        prev = vector["hash"]
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
