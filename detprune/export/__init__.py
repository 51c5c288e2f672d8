"""Export: the pruned dataset on disk and its manifest."""

from .manifest import fingerprint, read_manifest, write_manifest
from .writer import (
    MATERIALIZE_MODES,
    atomic_output_dir,
    check_output_dir,
    materialize_split,
    write_data_yaml,
)

__all__ = [
    "MATERIALIZE_MODES",
    "atomic_output_dir",
    "check_output_dir",
    "fingerprint",
    "materialize_split",
    "read_manifest",
    "write_data_yaml",
    "write_manifest",
]
