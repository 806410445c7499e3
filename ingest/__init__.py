"""Loading alert files (native, CFPB, Violation Tracker or a user's TOML format) into PostgreSQL.

See ingest/README.md for the native schema, the formats and the update rule.
"""

from ingest.errors import FormatError, IngestError
from ingest.formats import FormatSpec, builtin_formats, load_format
from ingest.generate import generate_alerts, load_generated
from ingest.pipeline import ingest_files
from ingest.report import FileReport, IngestReport

__all__ = [
    "FileReport",
    "FormatError",
    "FormatSpec",
    "IngestError",
    "IngestReport",
    "builtin_formats",
    "generate_alerts",
    "ingest_files",
    "load_format",
    "load_generated",
]
