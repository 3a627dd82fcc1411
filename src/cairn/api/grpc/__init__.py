"""The gRPC faces (containerd content services) and their generated protobuf code (``gen``)."""

from cairn.api.grpc.server import GrpcFaces, build_grpc_server

__all__ = ["GrpcFaces", "build_grpc_server"]
