"""The faces: protocol servers that translate wire messages into calls on the store and back."""

__all__: list[str] = []
