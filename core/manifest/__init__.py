"""The bundle manifest: what each board runs, what crosses each link, and the files' checksums.

Standard library only: board agents and FINN's docker read manifests without numpy or onnx.

The format is documented in docs/bundle.md#manifest; its types are here (`schema.py`). Later stages
read a bundle only through `load_manifest`, which checks the format version, every field's type and
every checksum, and returns a frozen `Manifest`; changes go through `dataclasses.replace` and the one
writer, `write_manifest` (or `update_manifest`, locked, for builds recording into a bundle at once).
Every file path a manifest lists stays inside its bundle (`check_relpath`): checked when a manifest
is written, loaded, uploaded and run (docs/security.md#bundles-stay-in-their-folder).
"""

from core.manifest.files import (
    BUNDLE_ID_HEX,
    BundleError,
    bundle_id_of,
    check_file,
    check_relpath,
    contained_path,
    file_entry,
    sha256_file,
)
from core.manifest.io import (
    FORMAT,
    MANIFEST,
    READS,
    VERSION,
    check_entries,
    load_manifest,
    parse_manifest,
    update_manifest,
    write_manifest,
)
from core.manifest.schema import (
    Boundary,
    FileEntry,
    FinnBuild,
    FinnIO,
    HostInput,
    HostOutput,
    HostSection,
    HostStage,
    Manifest,
    ModelInfo,
    ModelInput,
    Partition,
    Plan,
    TensorEntry,
)

__all__ = [
    "BUNDLE_ID_HEX", "FORMAT", "MANIFEST", "READS", "VERSION", "Boundary", "BundleError", "FileEntry", "FinnBuild",
    "FinnIO", "HostInput", "HostOutput", "HostSection", "HostStage", "Manifest", "ModelInfo", "ModelInput",
    "Partition", "Plan", "TensorEntry", "bundle_id_of", "check_entries", "check_file", "check_relpath",
    "contained_path", "file_entry", "load_manifest", "parse_manifest", "sha256_file", "update_manifest",
    "write_manifest",
]
