"""Where documents come from: the embedded stories, local files, or the Hugging Face hub.

Local files and hub datasets go through the same `datasets.load_dataset` call (streaming, so
nothing is cached or held in memory whole, unless a seeded holdout split is asked for); only where
the builder finds its files differs.
"""

from __future__ import annotations

import glob
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from parrot_lm.core.errors import DataError, ParrotError
from parrot_lm.core.io import storage_error

log = logging.getLogger(__name__)

# Why a record gave no document: its text field is absent, null, or not a string, or its file is
# empty (0 bytes: no builder yields a record for it, so it is counted here instead). A JSON line
# without the field reads as null: datasets fills every record out to the file's columns.
SKIP_REASONS = ("missing_field", "null", "not_string", "empty_file")
# U+FFFD, what encoding_errors=replace puts where a byte was not UTF-8.
REPLACEMENT_CHAR = "\ufffd"
# datasets logs a reader's failure itself before raising; ParrotLM's sentence says it better.
_READER_LOGGERS = (
    "datasets.packaged_modules.json.json",
    "datasets.packaged_modules.parquet.parquet",
)

# File extension -> datasets' packaged builder that reads it.
BUILDERS = {".txt": "text", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}


def resolve_files(
    path: str | Path, skipped: dict[str, int] | None = None
) -> list[tuple[str, list[str]]]:
    """A file, a folder (searched recursively) or a glob -> its files in sorted order, as runs of
    consecutive files read by the same `datasets` builder: [(builder name, files), ...].

    A folder may mix kinds (.txt notes next to .jsonl exports); each run is loaded with its own
    builder and the runs are chained, so documents come in sorted-file order whatever the mix.
    Empty (0-byte) files are left out; `skipped` (when given) counts them as "empty_file", so a
    folder of N files reads as N documents or records accounted for.
    Raises DataError when nothing is found, every file is empty, or a file has another suffix.
    """
    path = str(path)
    if Path(path).is_dir():
        files = sorted(
            str(p) for p in Path(path).rglob("*") if p.is_file() and p.suffix in BUILDERS
        )
    else:
        files = sorted(glob.glob(path, recursive=True)) if glob.has_magic(path) else [path]
        files = [f for f in files if Path(f).is_file()]
    if not files:
        raise DataError(f"No data files found at {path} (expected .txt, .jsonl or .parquet).")
    found = len(files)
    files = [f for f in files if Path(f).stat().st_size > 0]
    if skipped is not None:
        skipped["empty_file"] = skipped.get("empty_file", 0) + found - len(files)
    if not files:
        raise DataError(f"Every data file at {path} is empty; the corpus has no documents.")
    unknown = sorted({Path(f).suffix or "(none)" for f in files if Path(f).suffix not in BUILDERS})
    if unknown:
        raise DataError(
            f"Data files at {path} must each be .txt, .jsonl, .json or .parquet; found {unknown}."
        )
    runs: list[tuple[str, list[str]]] = []
    for f in files:
        builder = BUILDERS[Path(f).suffix]
        if runs and runs[-1][0] == builder:
            runs[-1][1].append(f)
        else:
            runs.append((builder, [f]))
    return runs


def load_source(
    source: dict[str, Any], skipped: dict[str, int] | None = None
) -> list[tuple[Any, str]]:
    """The `datasets` datasets for a `files` or `hub` source, each with the field that holds its
    text: [(dataset, field), ...] to be read in order. Streamed unless a holdout split is asked
    for (`train_test_split` needs the whole, cached dataset) or streaming is off.

    `.txt` runs of a files source read with `sample_by` into the field "text"; .jsonl/.parquet
    runs use `text_field`. `skipped` counts the empty files left out.
    Raises DataError (one sentence) when a source cannot be loaded.
    """
    import datasets

    holdout = source.get("holdout")
    streaming = source.get("streaming", True) and not holdout
    cache = {"cache_dir": source["cache_dir"]} if source.get("cache_dir") else {}
    field = source.get("text_field", "text")
    if source["kind"] == "files":
        runs = resolve_files(source["path"], skipped)
        if holdout and len(runs) > 1:  # train_test_split splits one dataset, not a chain
            raise DataError(
                f"data.source.holdout needs files of one kind, but {source['path']} mixes "
                f"{' and '.join(sorted({b for b, _ in runs}))} files; hold out from one kind."
            )
        for name in _READER_LOGGERS:
            logging.getLogger(name).setLevel(logging.CRITICAL)
        parts = []
        for builder, files in runs:
            kwargs: dict[str, Any] = {}
            if builder == "text":
                kwargs["sample_by"] = source.get("sample_by", "document")
            if builder in ("text", "json"):
                kwargs["encoding_errors"] = source.get("encoding_errors", "strict")
            try:  # not streamed (a holdout), the files are read here
                dataset = datasets.load_dataset(
                    builder, data_files=files, split="train", streaming=streaming, **kwargs, **cache
                )
            except Exception as e:
                raise read_error(source, e) from e
            part = take_holdout(dataset, holdout) if holdout else dataset
            parts.append((part, "text" if builder == "text" else field))
        return parts
    else:
        try:
            dataset = datasets.load_dataset(
                source["name"],
                source.get("config"),
                split=source.get("split", "train"),
                revision=source.get("revision"),
                data_files=source.get("data_files"),
                streaming=streaming,
                **cache,
            )
        except Exception as e:  # offline, unknown name, gated, ...
            raise read_error(source, e) from e
    return [(take_holdout(dataset, holdout) if holdout else dataset, field)]


def take_holdout(dataset, holdout: dict[str, Any]):
    """One part of a seeded `train_test_split`: nanoGPT's OpenWebText val split is the `test`
    part of test_size=0.0005, seed=2357, and its train split the `train` part."""
    part = holdout.get("part", "test")
    if part not in ("train", "test"):
        raise DataError(f"source.holdout.part must be 'train' or 'test', got {part!r}.")
    parts = dataset.train_test_split(
        test_size=holdout["test_size"], seed=int(holdout["seed"]), shuffle=True
    )
    return parts[part]


def iter_documents(
    source: dict[str, Any],
    skipped: dict[str, int] | None = None,
    decoded: dict[str, int] | None = None,
) -> Iterator[str]:
    """Documents as strings, in a deterministic order, up to source['limit'] if set.

    Records whose text field is absent, null or not a string, and empty files, are skipped,
    never silently: `skipped` (when given) counts them per reason (SKIP_REASONS) and a warning
    says how many. `decoded` (when given) counts under "docs_with_replacement_chars" the
    documents holding U+FFFD as they are read, before any filter can drop them.
    A file that cannot be read becomes one DataError sentence naming it (and the line, where
    there is one).
    """
    kind = source.get("kind")
    limit = source.get("limit")
    skipped = {} if skipped is None else skipped
    for reason in SKIP_REASONS:
        skipped.setdefault(reason, 0)
    decoded = {} if decoded is None else decoded
    decoded.setdefault("docs_with_replacement_chars", 0)
    if kind == "stories":
        from parrot_lm.data.stories import generate_stories

        yield from generate_stories(int(source["num_documents"]), seed=int(source.get("seed", 0)))
        return
    if kind not in ("files", "hub"):
        raise DataError(f"Unknown data source kind {kind!r}; expected stories, files or hub.")
    where = source.get("path") or source.get("name")
    parts = load_source(source, skipped)
    count = 0
    try:
        for index, row, field in _rows(parts):
            if limit is not None and count >= limit:
                break
            if field not in row:
                if index == 0:  # the (first file's) schema has no such column: no row has it
                    raise DataError(
                        f"Records in {where} have no field {field!r} (fields: {sorted(row)}); set "
                        "data.source.text_field."
                    )
                skipped["missing_field"] += 1  # a later file without the column
                continue
            text = row[field]
            if isinstance(text, str):
                count += 1
                decoded["docs_with_replacement_chars"] += REPLACEMENT_CHAR in text
                yield text
            else:
                skipped["null" if text is None else "not_string"] += 1
    except ParrotError:
        raise
    except Exception as e:  # pyarrow, datasets and json errors name no file or line
        raise read_error(source, e) from e
    if sum(skipped.values()):
        log.warning(
            "Skipped %d records of %s without text: %s.",
            sum(skipped.values()),
            where,
            describe_skipped(skipped, field),
        )


def _rows(parts: list[tuple[Any, str]]) -> Iterator[tuple[int, dict[str, Any], str]]:
    """(index within its part, row, text field) over the parts of load_source, in order."""
    for dataset, field in parts:
        for index, row in enumerate(dataset):
            yield index, row, field


def describe_skipped(skipped: dict[str, int], field: str = "text") -> str:
    """`skipped` counts in words, e.g. "3 without the field 'text', 2 null, 1 not a string"."""
    words = {
        "missing_field": f"without the field {field!r}",
        "null": "null (or no such field in a JSON line)",
        "not_string": "not a string",
        "empty_file": "empty (0-byte) file" + ("" if skipped.get("empty_file") == 1 else "s"),
    }
    return ", ".join(f"{skipped[r]} {words[r]}" for r in SKIP_REASONS if skipped.get(r))


def read_error(source: dict[str, Any], error: BaseException) -> ParrotError:
    """One sentence for a source that could not be read: the malformed file (and line) when
    one can be found by reading the files again, else what the reader said."""
    if isinstance(error, ParrotError):
        return error
    if source.get("kind") != "files":
        return DataError(
            f"Could not load hub dataset {source.get('name')!r} ({type(error).__name__}: "
            f"{_first_line(error)}); check the name and the network, or download it first "
            "with `make download`."
        )
    runs = resolve_files(source["path"])
    for builder, files in runs:
        found = find_malformed(builder, files, source.get("encoding_errors", "strict"))
        if found is not None:
            return DataError(found)
    if isinstance(error, OSError):
        return storage_error(error.filename or source["path"], error, "read")
    if type(error).__name__ == "CastError":  # datasets.table.CastError: fields differ per file
        return DataError(
            f"The files at {source['path']} do not all have the same fields; give one kind of "
            "record per data.source.path."
        )
    kinds = " and ".join(sorted({b for b, _ in runs}))
    return DataError(f"Could not read {source['path']} as {kinds} files ({_first_line(error)}).")


def find_malformed(builder: str, files: list[str], encoding_errors: str = "strict") -> str | None:
    """The first malformed file as a sentence naming it (and the line), or None.

    Only called after a reader failed: it reads every file again, line by line.
    """
    for file in files:
        if builder == "parquet":
            found = _check_parquet(file)
        else:
            found = _check_utf8(file) if encoding_errors == "strict" else None
            if found is None and builder == "json":
                found = _check_json(file, encoding_errors)
        if found is not None:
            return found
    return None


def _check_utf8(file: str) -> str | None:
    with open(file, "rb") as f:
        for number, line in enumerate(f, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as e:
                return (
                    f"{file} line {number} contains bytes that are not UTF-8 ({e.reason} at byte "
                    f"{e.start + 1} of the line); fix the file or set "
                    "data.source.encoding_errors=replace to replace them."
                )
    return None


def _check_json(file: str, encoding_errors: str) -> str | None:
    with open(file, encoding="utf-8", errors=encoding_errors) as f:
        lines = f.read().splitlines()
    first = next((line for line in lines if line.strip()), "")
    if Path(file).suffix == ".json" and not first.lstrip().startswith("{"):
        try:  # one JSON document (a list of records), not JSON lines
            json.loads("\n".join(lines))
        except json.JSONDecodeError as e:
            return f"{file} line {e.lineno} is not valid JSON (column {e.colno}: {e.msg})."
        return None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            return (
                f"{file} line {number} is not valid JSON (column {e.colno}: {e.msg}); fix or "
                "remove that line."
            )
        if not isinstance(record, dict):
            return (
                f"{file} line {number} is a JSON {type(record).__name__}, not an object; each "
                'line must be one record like {"text": "..."}.'
            )
    return None


def _check_parquet(file: str) -> str | None:
    import pyarrow.parquet as pq

    try:
        for _ in pq.ParquetFile(file).iter_batches():
            pass
    except Exception as e:  # ArrowInvalid, OSError: whatever pyarrow says, it names no file
        return f"{file} is not a readable Parquet file ({_first_line(e)}); replace or remove it."
    return None


def _first_line(error: BaseException) -> str:
    """An error's message for the inside of a sentence: its first line, no closing period."""
    text = str(error).strip()
    return text.splitlines()[0].rstrip(".") if text else type(error).__name__


def no_documents(
    source: dict[str, Any], skipped: dict[str, int], filtered: bool, what: str = "source"
) -> str:
    """Why a source gave no document, as one sentence: every record skipped (and why), all
    filtered out, or nothing there at all."""
    where = f"The {source.get('kind')} {what} {source.get('path') or source.get('name') or ''}"
    if sum(skipped.values()):
        field = source.get("text_field", "text")
        also = " or filtered out" if filtered else ""
        return (
            f"{where.rstrip()} yielded no documents: every record was skipped{also} "
            f"({describe_skipped(skipped, field)}); set data.source.text_field to the field that "
            "holds the text, or fix the records."
        )
    if filtered:
        return f"{where.rstrip()} yielded no documents after filtering."
    return f"{where.rstrip()} yielded no documents; check its path."
