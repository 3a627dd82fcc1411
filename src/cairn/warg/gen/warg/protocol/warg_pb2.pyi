import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PackagePermission(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PACKAGE_PERMISSION_UNSPECIFIED: _ClassVar[PackagePermission]
    PACKAGE_PERMISSION_RELEASE: _ClassVar[PackagePermission]
    PACKAGE_PERMISSION_YANK: _ClassVar[PackagePermission]

class OperatorPermission(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OPERATOR_PERMISSION_UNSPECIFIED: _ClassVar[OperatorPermission]
    OPERATOR_PERMISSION_COMMIT: _ClassVar[OperatorPermission]
    OPERATOR_PERMISSION_DEFINE_NAMESPACE: _ClassVar[OperatorPermission]
    OPERATOR_PERMISSION_IMPORT_NAMESPACE: _ClassVar[OperatorPermission]
PACKAGE_PERMISSION_UNSPECIFIED: PackagePermission
PACKAGE_PERMISSION_RELEASE: PackagePermission
PACKAGE_PERMISSION_YANK: PackagePermission
OPERATOR_PERMISSION_UNSPECIFIED: OperatorPermission
OPERATOR_PERMISSION_COMMIT: OperatorPermission
OPERATOR_PERMISSION_DEFINE_NAMESPACE: OperatorPermission
OPERATOR_PERMISSION_IMPORT_NAMESPACE: OperatorPermission

class Envelope(_message.Message):
    __slots__ = ("contents", "key_id", "signature")
    CONTENTS_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    contents: bytes
    key_id: str
    signature: str
    def __init__(self, contents: _Optional[bytes] = ..., key_id: _Optional[str] = ..., signature: _Optional[str] = ...) -> None: ...

class PackageRecord(_message.Message):
    __slots__ = ("prev", "version", "time", "entries")
    PREV_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    prev: str
    version: int
    time: _timestamp_pb2.Timestamp
    entries: _containers.RepeatedCompositeFieldContainer[PackageEntry]
    def __init__(self, prev: _Optional[str] = ..., version: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., entries: _Optional[_Iterable[_Union[PackageEntry, _Mapping]]] = ...) -> None: ...

class OperatorRecord(_message.Message):
    __slots__ = ("prev", "version", "time", "entries")
    PREV_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    prev: str
    version: int
    time: _timestamp_pb2.Timestamp
    entries: _containers.RepeatedCompositeFieldContainer[OperatorEntry]
    def __init__(self, prev: _Optional[str] = ..., version: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., entries: _Optional[_Iterable[_Union[OperatorEntry, _Mapping]]] = ...) -> None: ...

class PackageEntry(_message.Message):
    __slots__ = ("init", "grant_flat", "revoke_flat", "release", "yank")
    INIT_FIELD_NUMBER: _ClassVar[int]
    GRANT_FLAT_FIELD_NUMBER: _ClassVar[int]
    REVOKE_FLAT_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    YANK_FIELD_NUMBER: _ClassVar[int]
    init: PackageInit
    grant_flat: PackageGrantFlat
    revoke_flat: PackageRevokeFlat
    release: PackageRelease
    yank: PackageYank
    def __init__(self, init: _Optional[_Union[PackageInit, _Mapping]] = ..., grant_flat: _Optional[_Union[PackageGrantFlat, _Mapping]] = ..., revoke_flat: _Optional[_Union[PackageRevokeFlat, _Mapping]] = ..., release: _Optional[_Union[PackageRelease, _Mapping]] = ..., yank: _Optional[_Union[PackageYank, _Mapping]] = ...) -> None: ...

class PackageInit(_message.Message):
    __slots__ = ("key", "hash_algorithm")
    KEY_FIELD_NUMBER: _ClassVar[int]
    HASH_ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    key: str
    hash_algorithm: str
    def __init__(self, key: _Optional[str] = ..., hash_algorithm: _Optional[str] = ...) -> None: ...

class PackageGrantFlat(_message.Message):
    __slots__ = ("key", "permissions")
    KEY_FIELD_NUMBER: _ClassVar[int]
    PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    key: str
    permissions: _containers.RepeatedScalarFieldContainer[PackagePermission]
    def __init__(self, key: _Optional[str] = ..., permissions: _Optional[_Iterable[_Union[PackagePermission, str]]] = ...) -> None: ...

class PackageRevokeFlat(_message.Message):
    __slots__ = ("key_id", "permissions")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    permissions: _containers.RepeatedScalarFieldContainer[PackagePermission]
    def __init__(self, key_id: _Optional[str] = ..., permissions: _Optional[_Iterable[_Union[PackagePermission, str]]] = ...) -> None: ...

class PackageRelease(_message.Message):
    __slots__ = ("version", "content_hash")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CONTENT_HASH_FIELD_NUMBER: _ClassVar[int]
    version: str
    content_hash: str
    def __init__(self, version: _Optional[str] = ..., content_hash: _Optional[str] = ...) -> None: ...

class PackageYank(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: str
    def __init__(self, version: _Optional[str] = ...) -> None: ...

class OperatorEntry(_message.Message):
    __slots__ = ("init", "grant_flat", "revoke_flat", "define_namespace", "import_namespace")
    INIT_FIELD_NUMBER: _ClassVar[int]
    GRANT_FLAT_FIELD_NUMBER: _ClassVar[int]
    REVOKE_FLAT_FIELD_NUMBER: _ClassVar[int]
    DEFINE_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    IMPORT_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    init: OperatorInit
    grant_flat: OperatorGrantFlat
    revoke_flat: OperatorRevokeFlat
    define_namespace: OperatorDefineNamespace
    import_namespace: OperatorImportNamespace
    def __init__(self, init: _Optional[_Union[OperatorInit, _Mapping]] = ..., grant_flat: _Optional[_Union[OperatorGrantFlat, _Mapping]] = ..., revoke_flat: _Optional[_Union[OperatorRevokeFlat, _Mapping]] = ..., define_namespace: _Optional[_Union[OperatorDefineNamespace, _Mapping]] = ..., import_namespace: _Optional[_Union[OperatorImportNamespace, _Mapping]] = ...) -> None: ...

class OperatorInit(_message.Message):
    __slots__ = ("hash_algorithm", "key")
    HASH_ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    hash_algorithm: str
    key: str
    def __init__(self, hash_algorithm: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class OperatorGrantFlat(_message.Message):
    __slots__ = ("key", "permissions")
    KEY_FIELD_NUMBER: _ClassVar[int]
    PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    key: str
    permissions: _containers.RepeatedScalarFieldContainer[OperatorPermission]
    def __init__(self, key: _Optional[str] = ..., permissions: _Optional[_Iterable[_Union[OperatorPermission, str]]] = ...) -> None: ...

class OperatorRevokeFlat(_message.Message):
    __slots__ = ("key_id", "permissions")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    permissions: _containers.RepeatedScalarFieldContainer[OperatorPermission]
    def __init__(self, key_id: _Optional[str] = ..., permissions: _Optional[_Iterable[_Union[OperatorPermission, str]]] = ...) -> None: ...

class OperatorDefineNamespace(_message.Message):
    __slots__ = ("namespace",)
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    def __init__(self, namespace: _Optional[str] = ...) -> None: ...

class OperatorImportNamespace(_message.Message):
    __slots__ = ("namespace", "registry")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    registry: str
    def __init__(self, namespace: _Optional[str] = ..., registry: _Optional[str] = ...) -> None: ...
