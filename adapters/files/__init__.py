"""The files adapter: JSON Lines snapshots on either side, so the engine runs without any vendor."""

from adapters.files.adapter import FilesAdapter, FilesSettings

__all__ = ["FilesAdapter", "FilesSettings"]
