from cairn.api.grpc.gen.arcbox.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PullImageRequest(_message.Message):
    __slots__ = ("reference", "auth", "platform")
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    AUTH_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    reference: str
    auth: str
    platform: str
    def __init__(self, reference: _Optional[str] = ..., auth: _Optional[str] = ..., platform: _Optional[str] = ...) -> None: ...

class PullProgress(_message.Message):
    __slots__ = ("id", "status", "progress", "current", "total")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    id: str
    status: str
    progress: str
    current: int
    total: int
    def __init__(self, id: _Optional[str] = ..., status: _Optional[str] = ..., progress: _Optional[str] = ..., current: _Optional[int] = ..., total: _Optional[int] = ...) -> None: ...

class PushImageRequest(_message.Message):
    __slots__ = ("reference", "auth")
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    AUTH_FIELD_NUMBER: _ClassVar[int]
    reference: str
    auth: str
    def __init__(self, reference: _Optional[str] = ..., auth: _Optional[str] = ...) -> None: ...

class PushProgress(_message.Message):
    __slots__ = ("id", "status", "progress", "current", "total")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    id: str
    status: str
    progress: str
    current: int
    total: int
    def __init__(self, id: _Optional[str] = ..., status: _Optional[str] = ..., progress: _Optional[str] = ..., current: _Optional[int] = ..., total: _Optional[int] = ...) -> None: ...

class ListImagesRequest(_message.Message):
    __slots__ = ("all", "filters", "digests")
    ALL_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    DIGESTS_FIELD_NUMBER: _ClassVar[int]
    all: bool
    filters: str
    digests: bool
    def __init__(self, all: _Optional[bool] = ..., filters: _Optional[str] = ..., digests: _Optional[bool] = ...) -> None: ...

class ListImagesResponse(_message.Message):
    __slots__ = ("images",)
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[ImageSummary]
    def __init__(self, images: _Optional[_Iterable[_Union[ImageSummary, _Mapping]]] = ...) -> None: ...

class ImageSummary(_message.Message):
    __slots__ = ("id", "repo_tags", "repo_digests", "created", "size", "virtual_size", "containers", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    REPO_TAGS_FIELD_NUMBER: _ClassVar[int]
    REPO_DIGESTS_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    VIRTUAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    CONTAINERS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    id: str
    repo_tags: _containers.RepeatedScalarFieldContainer[str]
    repo_digests: _containers.RepeatedScalarFieldContainer[str]
    created: int
    size: int
    virtual_size: int
    containers: int
    labels: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., repo_tags: _Optional[_Iterable[str]] = ..., repo_digests: _Optional[_Iterable[str]] = ..., created: _Optional[int] = ..., size: _Optional[int] = ..., virtual_size: _Optional[int] = ..., containers: _Optional[int] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class InspectImageRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ImageInfo(_message.Message):
    __slots__ = ("id", "repo_tags", "repo_digests", "parent", "comment", "created", "author", "architecture", "os", "os_version", "size", "virtual_size", "config", "root_fs")
    ID_FIELD_NUMBER: _ClassVar[int]
    REPO_TAGS_FIELD_NUMBER: _ClassVar[int]
    REPO_DIGESTS_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    OS_FIELD_NUMBER: _ClassVar[int]
    OS_VERSION_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    VIRTUAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    ROOT_FS_FIELD_NUMBER: _ClassVar[int]
    id: str
    repo_tags: _containers.RepeatedScalarFieldContainer[str]
    repo_digests: _containers.RepeatedScalarFieldContainer[str]
    parent: str
    comment: str
    created: str
    author: str
    architecture: str
    os: str
    os_version: str
    size: int
    virtual_size: int
    config: ImageConfig
    root_fs: RootFS
    def __init__(self, id: _Optional[str] = ..., repo_tags: _Optional[_Iterable[str]] = ..., repo_digests: _Optional[_Iterable[str]] = ..., parent: _Optional[str] = ..., comment: _Optional[str] = ..., created: _Optional[str] = ..., author: _Optional[str] = ..., architecture: _Optional[str] = ..., os: _Optional[str] = ..., os_version: _Optional[str] = ..., size: _Optional[int] = ..., virtual_size: _Optional[int] = ..., config: _Optional[_Union[ImageConfig, _Mapping]] = ..., root_fs: _Optional[_Union[RootFS, _Mapping]] = ...) -> None: ...

class ImageConfig(_message.Message):
    __slots__ = ("hostname", "domainname", "user", "env", "cmd", "entrypoint", "working_dir", "labels", "exposed_ports", "volumes")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class ExposedPortsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.Empty
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.Empty, _Mapping]] = ...) -> None: ...
    class VolumesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.Empty
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.Empty, _Mapping]] = ...) -> None: ...
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    DOMAINNAME_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    CMD_FIELD_NUMBER: _ClassVar[int]
    ENTRYPOINT_FIELD_NUMBER: _ClassVar[int]
    WORKING_DIR_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    EXPOSED_PORTS_FIELD_NUMBER: _ClassVar[int]
    VOLUMES_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    domainname: str
    user: str
    env: _containers.RepeatedScalarFieldContainer[str]
    cmd: _containers.RepeatedScalarFieldContainer[str]
    entrypoint: _containers.RepeatedScalarFieldContainer[str]
    working_dir: str
    labels: _containers.ScalarMap[str, str]
    exposed_ports: _containers.MessageMap[str, _common_pb2.Empty]
    volumes: _containers.MessageMap[str, _common_pb2.Empty]
    def __init__(self, hostname: _Optional[str] = ..., domainname: _Optional[str] = ..., user: _Optional[str] = ..., env: _Optional[_Iterable[str]] = ..., cmd: _Optional[_Iterable[str]] = ..., entrypoint: _Optional[_Iterable[str]] = ..., working_dir: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., exposed_ports: _Optional[_Mapping[str, _common_pb2.Empty]] = ..., volumes: _Optional[_Mapping[str, _common_pb2.Empty]] = ...) -> None: ...

class RootFS(_message.Message):
    __slots__ = ("type", "layers")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    type: str
    layers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, type: _Optional[str] = ..., layers: _Optional[_Iterable[str]] = ...) -> None: ...

class RemoveImageRequest(_message.Message):
    __slots__ = ("id", "force", "prune_parents")
    ID_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    PRUNE_PARENTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    force: bool
    prune_parents: bool
    def __init__(self, id: _Optional[str] = ..., force: _Optional[bool] = ..., prune_parents: _Optional[bool] = ...) -> None: ...

class RemoveImageResponse(_message.Message):
    __slots__ = ("deleted", "untagged")
    DELETED_FIELD_NUMBER: _ClassVar[int]
    UNTAGGED_FIELD_NUMBER: _ClassVar[int]
    deleted: _containers.RepeatedScalarFieldContainer[str]
    untagged: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, deleted: _Optional[_Iterable[str]] = ..., untagged: _Optional[_Iterable[str]] = ...) -> None: ...

class TagImageRequest(_message.Message):
    __slots__ = ("source", "repo", "tag")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    REPO_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    source: str
    repo: str
    tag: str
    def __init__(self, source: _Optional[str] = ..., repo: _Optional[str] = ..., tag: _Optional[str] = ...) -> None: ...

class BuildContext(_message.Message):
    __slots__ = ("data", "eof")
    DATA_FIELD_NUMBER: _ClassVar[int]
    EOF_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    eof: bool
    def __init__(self, data: _Optional[bytes] = ..., eof: _Optional[bool] = ...) -> None: ...

class BuildProgress(_message.Message):
    __slots__ = ("stream", "status", "progress", "error", "aux")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    AUX_FIELD_NUMBER: _ClassVar[int]
    stream: str
    status: str
    progress: str
    error: str
    aux: str
    def __init__(self, stream: _Optional[str] = ..., status: _Optional[str] = ..., progress: _Optional[str] = ..., error: _Optional[str] = ..., aux: _Optional[str] = ...) -> None: ...

class ExistsImageRequest(_message.Message):
    __slots__ = ("reference",)
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    reference: str
    def __init__(self, reference: _Optional[str] = ...) -> None: ...

class ExistsImageResponse(_message.Message):
    __slots__ = ("exists", "id")
    EXISTS_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    exists: bool
    id: str
    def __init__(self, exists: _Optional[bool] = ..., id: _Optional[str] = ...) -> None: ...
