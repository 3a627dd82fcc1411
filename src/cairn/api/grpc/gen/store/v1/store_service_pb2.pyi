from cairn.api.grpc.gen.core.v1 import record_pb2 as _record_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from cairn.api.grpc.gen.sign.v1 import signature_pb2 as _signature_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PushWithOptionsRequest(_message.Message):
    __slots__ = ("record", "options")
    RECORD_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    record: _record_pb2.Record
    options: PushOptions
    def __init__(self, record: _Optional[_Union[_record_pb2.Record, _Mapping]] = ..., options: _Optional[_Union[PushOptions, _Mapping]] = ...) -> None: ...

class PushOptions(_message.Message):
    __slots__ = ("signature",)
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    signature: _signature_pb2.Signature
    def __init__(self, signature: _Optional[_Union[_signature_pb2.Signature, _Mapping]] = ...) -> None: ...

class PushWithOptionsResponse(_message.Message):
    __slots__ = ("record_ref",)
    RECORD_REF_FIELD_NUMBER: _ClassVar[int]
    record_ref: _record_pb2.RecordRef
    def __init__(self, record_ref: _Optional[_Union[_record_pb2.RecordRef, _Mapping]] = ...) -> None: ...

class PullWithOptionsRequest(_message.Message):
    __slots__ = ("record_ref", "options")
    RECORD_REF_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    record_ref: _record_pb2.RecordRef
    options: PullOptions
    def __init__(self, record_ref: _Optional[_Union[_record_pb2.RecordRef, _Mapping]] = ..., options: _Optional[_Union[PullOptions, _Mapping]] = ...) -> None: ...

class PullOptions(_message.Message):
    __slots__ = ("include_signature",)
    INCLUDE_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    include_signature: bool
    def __init__(self, include_signature: _Optional[bool] = ...) -> None: ...

class PullWithOptionsResponse(_message.Message):
    __slots__ = ("record", "signature")
    RECORD_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    record: _record_pb2.Record
    signature: _signature_pb2.Signature
    def __init__(self, record: _Optional[_Union[_record_pb2.Record, _Mapping]] = ..., signature: _Optional[_Union[_signature_pb2.Signature, _Mapping]] = ...) -> None: ...
