"""Inference inputs read as a stream of Arrow record batches (pyarrow's CSV, JSON and Parquet streaming
readers), so memory holds one block, never the file.

Every column of the input is kept; the text column must exist. Anything wrong with the file is a
DataError of one line naming the file, the row where it is known, and the reason.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from fmops_pipelines.errors import DataError

FORMATS = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
# CSV/JSON read block. Arrow's streaming readers read ahead of the consumer; measured on a 1M-row CSV, the
# most Arrow held at once was 38 MB with 1 MB blocks and 9 MB with 256 KB blocks (the engine joins small
# blocks into model-sized batches, so the block size does not limit the batch size)
BLOCK_BYTES = 256 << 10


def input_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"{path}: unsupported format '{path.suffix}' (use .csv, .tsv, .parquet or .jsonl)")
    return fmt


def _first_bad_utf8_line(path: Path) -> int | None:
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                decoder.decode(line)
            except UnicodeDecodeError:
                return number
    return None


def _csv_batches(path: Path, text_column: str, delimiter: str = ",") -> Iterator[pa.RecordBatch]:
    import pyarrow.csv as pcsv

    bad: list = []

    def on_invalid(row) -> str:
        bad.append(row)
        return "error"

    def reader(column_types: dict | None):
        # newlines_in_values: a quoted text may span lines (reviews, emails); without it a file of such texts
        # larger than one block stopped with "CSV parser got out of sync with chunker". Read on one thread, it
        # costs nothing measurable (1M rows, 89 MB: 0.11-0.15 s either way)
        return pcsv.open_csv(path, read_options=pcsv.ReadOptions(block_size=BLOCK_BYTES, use_threads=False),
                             parse_options=pcsv.ParseOptions(delimiter=delimiter, invalid_row_handler=on_invalid,
                                                             newlines_in_values=True),
                             convert_options=pcsv.ConvertOptions(column_types=column_types or {}))

    try:
        names = reader(None).schema.names
        stream = reader({name: pa.string() for name in names})  # every column as text: no per-block type guessing
        last = None
        for batch in stream:
            if batch.num_rows:
                last = batch.column(batch.num_columns - 1)[-1].as_py()
            yield batch
        if (line := _unclosed_quote_line(path, last, delimiter)) is not None:
            raise DataError(f"{path}: line {line}: a quoted field opens there and is never closed (every row after "
                            f"it would have been read as its text)")
    except pa.ArrowInvalid as exc:
        message = str(exc)
        if bad:
            row = bad[0]
            raise DataError(f"{path}: line {row.number}: expected {row.expected_columns} fields, got "
                            f"{row.actual_columns}") from None
        if "invalid UTF8" in message:
            line = _first_bad_utf8_line(path)
            raise DataError(f"{path}: {f'line {line}: ' if line else ''}not valid UTF-8 text") from None
        if "Empty CSV file" in message:
            raise DataError(f"{path}: empty file") from None
        raise DataError(f"{path}: cannot be read as CSV: {message.splitlines()[0]}") from None


def _unclosed_quote_line(path: Path, last_value: str | None, delimiter: str = ",") -> int | None:
    """The line where a quoted field opens that the file never closes, else None. Arrow's CSV reader takes such a
    field to run to the end of the file (the rows after it lost in one text, silently). Its value is then the
    file's tail after its opening quote, verbatim but for doubled quotes; a closed quoted field's raw form ends
    with its closing quote, and an unquoted one does not start with a quote: neither ends the file that way."""
    if not last_value:
        return None
    tail = ('"' + last_value.replace('"', '""')).encode()
    size = path.stat().st_size
    if size < len(tail):
        return None
    with path.open("rb") as f:
        f.seek(size - len(tail) - 1 if size > len(tail) else 0)
        end = f.read()
    if not end.endswith(tail) or (len(end) > len(tail) and end[0:1] not in (delimiter.encode(), b"\n", b"\r")):
        return None  # not the tail, or its quote is inside an unquoted field, not a field's opening quote
    lines, left = 1, size - len(tail)
    with path.open("rb") as f:  # a block at a time, as the file was read
        while left > 0:
            block = f.read(min(BLOCK_BYTES, left))
            lines, left = lines + block.count(b"\n"), left - len(block)
    return lines


def _jsonl_batches(path: Path, text_column: str) -> Iterator[pa.RecordBatch]:
    import json

    import pyarrow.json as pjson

    try:
        yield from pjson.open_json(path, read_options=pjson.ReadOptions(block_size=BLOCK_BYTES), parse_options=
                                   pjson.ParseOptions(explicit_schema=pa.schema([(text_column, pa.string())]),
                                                      unexpected_field_behavior="infer"))
    except pa.ArrowInvalid as exc:
        with path.open("rb") as f:  # the error path only: the first line that is not a JSON object, or whose
            for number, line in enumerate(f, start=1):  # text is not a string (Arrow's message names neither)
                try:
                    row = json.loads(line) if line.strip() else {}
                except UnicodeDecodeError:
                    raise DataError(f"{path}: line {number}: not valid UTF-8 text") from None
                except ValueError as bad:
                    raise DataError(f"{path}: line {number}: not a JSON object ({str(bad).splitlines()[0]})") from None
                if not isinstance(row, dict):
                    raise DataError(f"{path}: line {number}: not a JSON object (a JSON {type(row).__name__})") from None
                value = row.get(text_column)
                if value is not None and not isinstance(value, str):
                    raise DataError(f"{path}: line {number}: '{text_column}' is {json.dumps(value)[:40]}, not a "
                                    f"string (write it in quotes)") from None
        if path.stat().st_size == 0:
            raise DataError(f"{path}: empty file") from None
        raise DataError(f"{path}: cannot be read as JSON lines: {str(exc).splitlines()[0]}") from None


def _parquet_batches(path: Path, batch_rows: int) -> Iterator[pa.RecordBatch]:
    import pyarrow.parquet as pq

    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file")
    try:
        file = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path}: not a Parquet file ({str(exc).splitlines()[0]})") from None
    yield from file.iter_batches(batch_size=batch_rows)


def read_batches(path: Path, text_column: str = "text", batch_rows: int = 65536) -> Iterator[pa.RecordBatch]:
    """Record batches of the input with the text column as non-null strings; raises DataError on the first
    problem (before any batch of a file with a missing column, at the block where a malformed row sits)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    fmt = input_format(path)
    batches = {"csv": lambda: _csv_batches(path, text_column), "tsv": lambda: _csv_batches(path, text_column, "\t"),
               "jsonl": lambda: _jsonl_batches(path, text_column),
               "parquet": lambda: _parquet_batches(path, batch_rows)}[fmt]()
    rows, schema = 0, None
    for batch in batches:
        if text_column not in batch.schema.names:
            raise DataError(f"{path}: missing column '{text_column}'; columns are {batch.schema.names} (name the "
                            f"text column with inference.text_column, or fmops predict --text-column)")
        if batch.num_rows == 0:
            continue
        batch = with_text_as_string(batch, text_column, path, rows)
        schema = schema or batch.schema
        if not batch.schema.equals(schema):  # JSON lines infer each block's fields: later rows may differ
            batch = _conform(batch, schema, path, rows)
        yield batch
        rows += batch.num_rows
    if rows == 0:
        raise DataError(f"{path}: no rows to predict")


def _conform(batch: pa.RecordBatch, schema: pa.Schema, path: Path, first_row: int) -> pa.RecordBatch:
    """A later block in the first block's columns and types (one output file has one schema)."""
    if batch.schema.names != schema.names:
        raise DataError(f"{path}: rows from {first_row + 1} have fields {batch.schema.names}, the first rows "
                        f"{schema.names}; give every row the same fields")
    try:
        return batch.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(f"{path}: rows from {first_row + 1}: field types differ from the first rows "
                        f"({str(exc).splitlines()[0]})") from None


def with_text_as_string(batch: pa.RecordBatch, text_column: str, path: Path, first_row: int) -> pa.RecordBatch:
    import pyarrow.compute as pc

    i = batch.schema.get_field_index(text_column)
    column = batch.column(i)
    if column.type not in (pa.string(), pa.large_string()):
        try:
            column = column.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise DataError(f"{path}: column '{text_column}' ({column.type}) is not text near row {first_row + 1}: "
                            f"{str(exc).splitlines()[0]}") from None
    if column.null_count:
        column = pc.fill_null(column, "")
    return batch.set_column(i, text_column, column)
