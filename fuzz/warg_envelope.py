"""atheris harness: Warg envelopes and records (protobuf) and their JSON envelope form.

Contract checked: only InvalidArgumentError kinds (WargFormatError, ValidationError);
decoded records re-encode to bytes that decode to the same record; a decoded
envelope fed to fresh package and operator log states is applied or refused by
the spec, never anything else.
"""

from __future__ import annotations

import json
import sys

from _harness import main

# Instrumented for coverage by _harness.main() once loaded.
from cairn.core.errors import InvalidArgumentError
from cairn.warg.crypto import PrivateKey
from cairn.warg.hashes import AnyHash
from cairn.warg.records import (
    Envelope,
    OperatorDefineNamespace,
    OperatorInit,
    OperatorRecord,
    PackageInit,
    PackageRecord,
    PackageRelease,
    PackageYank,
    RecordTime,
)
from cairn.warg.semver import Version
from cairn.warg.validation import OperatorLogState, PackageLogState

_KEY = PrivateKey.generate()
_PACKAGE = PackageRecord(None, 0, RecordTime(1_700_000_000, 5), (
    PackageInit(_KEY.public_key), PackageRelease(Version.parse("1.0.0-rc.1+b"), AnyHash.of(b"x")),
    PackageYank(Version.parse("1.0.0-rc.1+b"))))
_OPERATOR = OperatorRecord(None, 0, RecordTime(1_700_000_000, 0), (
    OperatorInit(_KEY.public_key), OperatorDefineNamespace("test")))
SEEDS = [
    b"\x00" + Envelope.sign_package(_PACKAGE, _KEY).encode(),
    b"\x00" + Envelope.sign_operator(_OPERATOR, _KEY).encode(),
    b"\x01" + _PACKAGE.encode(),
    b"\x01" + _OPERATOR.encode(),
    b"\x02" + json.dumps(Envelope.sign_package(_PACKAGE, _KEY).to_json()).encode(),
]


def _envelope(kind: int, body: bytes) -> Envelope | None:
    if kind == 0:
        return Envelope.decode(body)
    if kind == 2:
        try:
            obj = json.loads(body)
        except ValueError:
            return None
        return Envelope.from_json(obj)
    return Envelope(body, _KEY.public_key.key_id, _KEY.sign(b"WARG-PACKAGE-RECORD-SIGNATURE-V0", body))


def test_one_input(data: bytes) -> None:
    if not data:
        return
    kind, body = data[0] % 3, data[1:]
    for record_type in (PackageRecord, OperatorRecord):
        try:
            record = record_type.decode(body)
        except InvalidArgumentError:
            continue
        assert record_type.decode(record.encode()) == record
    try:
        envelope = _envelope(kind, body)
    except InvalidArgumentError:
        return
    if envelope is None:
        return
    for state in (PackageLogState(), OperatorLogState()):
        try:
            state.validate(envelope)
        except InvalidArgumentError:
            pass


if __name__ == "__main__":
    main(test_one_input, SEEDS)
    sys.exit(0)
