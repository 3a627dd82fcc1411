from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LogProofBundle(_message.Message):
    __slots__ = ("log_length", "consistent_lengths", "included_indices", "hashes")
    LOG_LENGTH_FIELD_NUMBER: _ClassVar[int]
    CONSISTENT_LENGTHS_FIELD_NUMBER: _ClassVar[int]
    INCLUDED_INDICES_FIELD_NUMBER: _ClassVar[int]
    HASHES_FIELD_NUMBER: _ClassVar[int]
    log_length: int
    consistent_lengths: _containers.RepeatedScalarFieldContainer[int]
    included_indices: _containers.RepeatedScalarFieldContainer[int]
    hashes: _containers.RepeatedCompositeFieldContainer[HashEntry]
    def __init__(self, log_length: _Optional[int] = ..., consistent_lengths: _Optional[_Iterable[int]] = ..., included_indices: _Optional[_Iterable[int]] = ..., hashes: _Optional[_Iterable[_Union[HashEntry, _Mapping]]] = ...) -> None: ...

class HashEntry(_message.Message):
    __slots__ = ("index", "hash")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    index: int
    hash: bytes
    def __init__(self, index: _Optional[int] = ..., hash: _Optional[bytes] = ...) -> None: ...

class MapProofBundle(_message.Message):
    __slots__ = ("proofs",)
    PROOFS_FIELD_NUMBER: _ClassVar[int]
    proofs: _containers.RepeatedCompositeFieldContainer[MapInclusionProof]
    def __init__(self, proofs: _Optional[_Iterable[_Union[MapInclusionProof, _Mapping]]] = ...) -> None: ...

class MapInclusionProof(_message.Message):
    __slots__ = ("hashes",)
    HASHES_FIELD_NUMBER: _ClassVar[int]
    hashes: _containers.RepeatedCompositeFieldContainer[OptionalHash]
    def __init__(self, hashes: _Optional[_Iterable[_Union[OptionalHash, _Mapping]]] = ...) -> None: ...

class OptionalHash(_message.Message):
    __slots__ = ("hash",)
    HASH_FIELD_NUMBER: _ClassVar[int]
    hash: bytes
    def __init__(self, hash: _Optional[bytes] = ...) -> None: ...
