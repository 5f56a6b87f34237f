"""Readers: every source becomes one DataFrame with columns id, text, label (+ metadata columns).

Labels come out as the spec's label names; anything that cannot be mapped is a DataError naming the
file, the column or the row, raised before any state is written.
"""

from __future__ import annotations

import csv
import html
import json
import re
from pathlib import Path

import pandas as pd

from fmops_pipelines.data import registry
from fmops_pipelines.errors import DataError
from fmops_pipelines.spec import DatasetSpec, TaskSpec

CORE_COLUMNS = ["id", "text", "label"]
DELIMITERS = {".csv": ",", ".tsv": "\t"}  # delimited text files by suffix
SEPARATOR_NAMES = {",": "commas", "\t": "tabs", ";": "semicolons"}


def _clean(text: str) -> str:
    text = html.unescape(text.replace("\ufeff", ""))
    return re.sub(r"\s+", " ", text).strip()


def read_sms_spam(paths: list[Path]) -> pd.DataFrame:
    (path,) = paths
    df = pd.read_csv(path, sep="\t", header=None, names=["label", "text"], quoting=csv.QUOTE_NONE,
                     dtype=str, encoding="utf-8", keep_default_na=False)
    df["id"] = [f"sms-{i:05d}" for i in range(len(df))]
    df["text"] = df["text"].map(_clean)
    return df[CORE_COLUMNS]


def read_youtube_spam(paths: list[Path]) -> pd.DataFrame:
    frames = []
    for path in paths:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        video = path.stem.split("-", 1)[-1]
        # COMMENT_ID repeats inside some files, so the row position makes the id unique and stable.
        df["id"] = [f"{video}-{i:04d}" for i in range(len(df))]
        df["text"] = df["CONTENT"].map(_clean)
        df["label"] = df["CLASS"].map({"1": "spam", "0": "ham"})
        df["video"] = video
        frames.append(df[[*CORE_COLUMNS, "video"]])
    return pd.concat(frames, ignore_index=True)


def read_ag_news(paths: list[Path]) -> pd.DataFrame:
    (path,) = paths
    df = pd.read_csv(path, header=None, names=["label", "title", "description"], dtype=str, keep_default_na=False)

    def unescape(s: str) -> str:  # AG News writes newlines as '\' and entities as '#36;'
        return _clean(re.sub(r"#(\d+);", r"&#\1;", s.replace("\\", " ")))

    df["text"] = df["title"].map(unescape) + ". " + df["description"].map(unescape)
    df["id"] = [f"ag-{i:05d}" for i in range(len(df))]
    return df[CORE_COLUMNS]


def read_sst2_phrases(paths: list[Path]) -> pd.DataFrame:
    """GLUE SST-2 train: 67,349 phrases and sentences of movie reviews, label 0/1 (a large pool for scale runs)."""
    import csv

    (path,) = paths
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE)
    df["text"] = df["sentence"].map(_clean)
    df["id"] = [f"sst2-{i:05d}" for i in range(len(df))]
    return df[CORE_COLUMNS]


def _check_text_file(path: Path) -> None:
    """An empty file, bytes that are not UTF-8 and an unclosed quote, each said with the line where it is
    (pandas' own messages give positions within an internal buffer, or a row count without the header)."""
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(f"{path}: the file is empty (not even a header row)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{path}: line {line} is not UTF-8 (byte 0x{raw[exc.start]:02x}); save the file as UTF-8") from None
    if path.suffix.lower() in DELIMITERS:
        import csv
        import io

        reader = csv.reader(io.StringIO(text, newline=""), delimiter=DELIMITERS[path.suffix.lower()], strict=True)
        last = 0
        try:
            for _ in reader:
                last = reader.line_num
        except csv.Error as exc:
            raise DataError(f"{path}: broken CSV quoting in the record that starts on line {last + 1} ({exc})") from None


def read_table(path: Path) -> pd.DataFrame:
    """A CSV / TSV / Parquet / JSONL file as strings where the format allows; errors name the file."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix in (*DELIMITERS, ".jsonl", ".ndjson"):
        _check_text_file(path)
    try:
        if suffix in DELIMITERS:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, sep=DELIMITERS[suffix])
            other = next((c for c in SEPARATOR_NAMES if c != DELIMITERS[suffix] and c in frame.columns[0]), None)
            if len(frame.columns) == 1 and other is not None:  # one column: the file is not split as it was saved
                raise DataError(f"{path}: the header is one column {frame.columns[0]!r}: fmops reads {suffix} files "
                                f"separated by {SEPARATOR_NAMES[DELIMITERS[suffix]]}, and this one looks separated "
                                f"by {SEPARATOR_NAMES[other]} (save it as .csv with commas, or as .tsv with tabs)")
            return frame
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix in (".jsonl", ".ndjson"):
            return pd.read_json(path, lines=True, dtype=False)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: cannot be read: {str(exc).splitlines()[0]}") from None
    raise DataError(f"{path}: unsupported format '{suffix}' (use .csv, .tsv, .parquet or .jsonl)")


def read_wrench(paths: list[Path]) -> pd.DataFrame:
    """WRENCH JSON splits -> id, text, label (its label names), split, weak_labels (the LF votes).

    Train rows keep WRENCH's gold label column here only because its benchmarks report on it; fmops'
    own splits never pass train labels on. Where the registry pins labeled_ids.json (youtube), the train
    rows it lists are duplicates appended to train.json and are dropped, giving WRENCH's official sizes.
    """
    by_name = {p.name: p for p in paths}
    names = json.loads(by_name["label.json"].read_text())
    frames = []
    for split, file in (("train", "train.json"), ("dev", "valid.json"), ("test", "test.json")):
        raw = json.loads(by_name[file].read_text())
        frames.append(pd.DataFrame({
            "id": [f"{split}-{k}" for k in raw],
            "text": [_clean(v["data"]["text"]) for v in raw.values()],
            "label": [names[str(v["label"])].lower() for v in raw.values()],
            "split": split,
            "weak_labels": [v["weak_labels"] for v in raw.values()],
        }))
    df = pd.concat(frames, ignore_index=True)
    if "labeled_ids.json" in by_name:
        appended = {f"train-{i}" for i in json.loads(by_name["labeled_ids.json"].read_text())["labeled_ids"]}
        df = df[~df["id"].isin(appended)]
    return df.reset_index(drop=True)


def local_path(path, base: Path) -> Path:
    """A spec's data file: relative to the task folder `base`, resolved, so that reads and errors name the file
    itself ("../../data.csv" means nothing where the user runs fmops)."""
    path = Path(path)
    return path if path.is_absolute() else (base / path).resolve()


def read_local(ds: DatasetSpec, base: Path) -> pd.DataFrame:
    """A user's dataset file (or one per split: dataset.split_files); paths are relative to the task folder."""
    if ds.split_files:
        parts = {"train": ds.path, **ds.split_files}
        frames = [_read_local_file(ds, Path(file), base).assign(split=name) for name, file in parts.items()]
        df = pd.concat(frames, ignore_index=True)
        if not ds.id_column:  # row numbers repeat across files: prefix them with the split
            df["id"] = df["split"] + "-" + df["id"]
        return df
    pool = _read_local_file(ds, Path(ds.path), base, labels_optional=bool(ds.gold_files))  # type: ignore[arg-type]
    if not ds.gold_files:
        return pool
    gold = [_read_local_file(ds, Path(file), base) for file in ds.gold_files]
    if not ds.id_column:  # row numbers repeat across files: prefix each gold file's with its position
        gold = [frame.assign(id=f"gold{i}-" + frame["id"]) for i, frame in enumerate(gold)]
    return pd.concat([pool, *gold], ignore_index=True)


def _read_local_file(ds: DatasetSpec, path: Path, base: Path, labels_optional: bool = False) -> pd.DataFrame:
    path = local_path(path, base)
    df = read_table(path)
    if labels_optional and ds.label_column not in df.columns:  # the unlabelled pool beside gold_files
        ds = ds.model_copy(update={"label_column": None})
    for field, column in (("text_column", ds.text_column), ("label_column", ds.label_column),
                          ("id_column", ds.id_column)):
        if column is not None and column not in df.columns:
            raise DataError(f"{path}: missing column '{column}' (dataset.{field}); columns are {list(df.columns)}")
    out = pd.DataFrame({
        "id": df[ds.id_column].astype(str) if ds.id_column else [f"row-{i:06d}" for i in range(len(df))],
        "text": df[ds.text_column],
        # an empty label cell is an unlabelled row (train material), not a label named ''
        "label": df[ds.label_column].astype("string").str.strip().replace("", pd.NA) if ds.label_column else None,
    })
    extra = [c for c in df.columns if c not in {ds.text_column, ds.label_column, ds.id_column}]
    return pd.concat([out, df[extra].reset_index(drop=True)], axis=1).rename(columns=str)


def load_dataset(spec: TaskSpec, data_home: Path | None = None) -> pd.DataFrame:
    """The task's dataset with labels mapped to the spec's label names and basic integrity enforced."""
    ds = spec.dataset
    if ds.registry:
        entry = registry.REGISTRY.get(ds.registry)
        if entry is None:
            known = ", ".join(sorted(registry.REGISTRY))
            raise DataError(f"{spec.root / 'task.yaml'}: dataset.registry: unknown dataset '{ds.registry}' (known: {known})")
        df = globals()[entry.reader](registry.fetch(ds.registry, data_home))
        source = ds.registry
    else:
        df = read_local(ds, spec.root)
        gold = ", ".join(str(local_path(f, spec.root)) for f in ds.gold_files)
        source = str(local_path(ds.path, spec.root)) + (f" (+ gold {gold})" if ds.gold_files else "")
    if df.empty:
        raise DataError(f"{source}: dataset is empty (0 rows)")
    df["text"] = df["text"].astype("string")
    blank = df["text"].isna() | (df["text"].str.strip() == "")
    if blank.any():
        raise DataError(f"{source}: row id={df.loc[blank, 'id'].iloc[0]}: empty text ({int(blank.sum())} such rows)")
    if df["label"].notna().any():
        df["label"] = df["label"].astype("string").map(lambda v: ds.label_map.get(v, v) if pd.notna(v) else v)
        unknown = df["label"].notna() & ~df["label"].isin(spec.label_names)
        if unknown.any():
            row = df.loc[unknown].iloc[0]
            where = f" in column '{ds.label_column}' (dataset.label_column)" if ds.path else ""
            raise DataError(f"{source}: row id={row['id']}: label '{row['label']}'{where} is not one of "
                            f"{spec.label_names} (map it with dataset.label_map)")
    if ds.declared_split_column is not None:
        where = f"{source} (+ {', '.join(ds.split_files.values())})" if ds.split_files else source
        _check_declared_split(df, ds.declared_split_column, where)
    dupes = df["id"].duplicated()
    if dupes.any():
        raise DataError(f"{source}: id '{df.loc[dupes, 'id'].iloc[0]}' appears more than once")
    return df.reset_index(drop=True)


DECLARED_SPLITS = ("train", "dev", "test")
# what other tools call them (Hugging Face datasets: validation; WRENCH: valid), read as fmops's names
SPLIT_ALIASES = {"validation": "dev", "valid": "dev", "val": "dev", "training": "train", "testing": "test"}


def declared_split_values(values: pd.Series) -> pd.Series:
    """A split column's values as fmops names them: stripped, lower case, aliases mapped (SPLIT_ALIASES)."""
    return values.astype("string").str.strip().str.lower().replace(SPLIT_ALIASES)


def _check_declared_split(df: pd.DataFrame, column: str, source: str) -> None:
    """dataset.split_column: present, only train/dev/test (or their aliases), a test split with gold on every row;
    the column is normalised in place (declared_split_values) so the splits stage reads exactly those three values."""
    if column not in df.columns:
        raise DataError(f"{source}: dataset.split_column: no column '{column}'; columns are {list(df.columns)}")
    values = declared_split_values(df[column])
    bad = ~values.isin(DECLARED_SPLITS)
    if bad.any():
        row = df.loc[bad].iloc[0]
        raise DataError(f"{source}: column '{column}' (dataset.split_column), row id={row['id']}: "
                        f"'{row[column]}' is not one of {list(DECLARED_SPLITS)} (or validation / valid / val for dev)")
    test = values == "test"
    if not test.any():
        raise DataError(f"{source}: column '{column}' (dataset.split_column) declares no test rows")
    unlabelled = test & df["label"].isna()
    if unlabelled.any():
        raise DataError(f"{source}: column '{column}' (dataset.split_column), row id={df.loc[unlabelled, 'id'].iloc[0]}: "
                        f"a declared test row has no gold label ({int(unlabelled.sum())} such rows)")
    df[column] = values
