"""Errors of the Warg protocol library (specs/warg.md sections 1-5).

They subclass cairn's ``InvalidArgumentError`` because every one of them means
"the bytes or text a peer sent are wrong", and each face already maps that kind
(the Warg HTTP face turns them into 400/422 bodies). Separate classes let the
registry tell a malformed record (400 on publish) from one that decodes but does
not validate (rejected with its reason), and both from a bad proof.
"""

from __future__ import annotations

from cairn.core.errors import InvalidArgumentError

__all__ = ["ProofError", "ValidationError", "WargFormatError"]


class WargFormatError(InvalidArgumentError):
    """A hash, key, signature, name, version or record that does not parse or decode."""


class ValidationError(InvalidArgumentError):
    """A record that decodes but breaks a log rule; ``.message`` is exactly the spec's text."""


class ProofError(InvalidArgumentError):
    """A proof that cannot be built, decoded, or does not verify."""
