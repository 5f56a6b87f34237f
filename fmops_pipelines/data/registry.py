"""Dataset registry: pinned source URLs + sha256, fetched once into the data home and verified.

The data home mirrors the registry's relative paths, so pointing FMOPS_DATA_HOME at a folder that
already holds verified copies (tests and CI use ../shared/datasets) needs no network at all.
"""

from __future__ import annotations

import hashlib
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from fmops_pipelines.errors import DataError
from fmops_pipelines.paths import atomic_write_bytes, data_home

_RAW = "https://raw.githubusercontent.com"


@dataclass(frozen=True)
class PinnedFile:
    relpath: str
    url: str
    sha256: str


@dataclass(frozen=True)
class RegistryDataset:
    name: str
    files: tuple[PinnedFile, ...]
    reader: str  # name of a function in fmops_pipelines.data.readers
    citation: str


def _pinned(repo: str, commit: str, src: str, relpath: str, sha256: str) -> PinnedFile:
    return PinnedFile(relpath, f"{_RAW}/{repo}/{commit}/{src}", sha256)


_SMS = ("PARKER-X/SpamClassifier", "5fa41eaf3ec0d21d3ffced673800d25b6b8ffc20")
_YT = ("C0D3-BR3AK3R/HadoopFinalNCU-Project", "c1c9490617ac3b214f9ff7ebf011f2ac59a523c4")
_AG = ("mhjabreel/CharCnn_Keras", "555590db4219b1243abb1918effd6a7425a2d75f")
_SST2 = ("smolPixel/VAETextImages", "7a73759ad65b43723dfc31de586f8d9bbc53d06a")
_YT_FILES = {
    "Youtube01-Psy.csv": "19797e6c77690e3c8809cfd2853ae7341390636367ba66cf5d4f4083f0b88535",
    "Youtube02-KatyPerry.csv": "902c614f8ef24f987d6f614d7e6111aa5160b89a0646b68e007bd6044a3d123b",
    "Youtube03-LMFAO.csv": "702ef589860a1831956f527760a3d9737ef8a07ab36c7de35b92b8898b8c3928",
    "Youtube04-Eminem.csv": "92f54eb6b22fdf3b7ae85e1f500e5aa7442edd025e504b988a97078756187e76",
    "Youtube05-Shakira.csv": "1d8ab47b71e8037c51183b2fc62f0591a48a4b54f3a4f5d9d3043113b274e98e",
}

_WRENCH = ("JerrryNie/DyGen", "41902c324779157a272548a008a6e487f6d81acc")
_WRENCH_FILES = {
    # youtube's labeled_ids.json lists 100 rows appended to train.json that duplicate train rows
    "youtube": {"label.json": "6837af4230238ed5c9d5d32ce309083b24491fe5d085f0b779298e7c67eeb74a",
                "labeled_ids.json": "b338be1717f640901a6826d2e1cb0ab6b53d71d200ef8a9429de31a219c65c12",
                "train.json": "8c487acf4e3e16b340e28f3633d5613f83c4db2d3b287e4341c86ff8f2192705",
                "valid.json": "01d28d71c48e34bdde0566a9eead1d9694baa4eae176cea6d979bb59c4516df3",
                "test.json": "ef04412aee047657e41d7ad1411f11d05fce13b642bf1bec8897d138343ee12d"},
    "sms": {"label.json": "5ba8069344eaf5578717910018232889bb77d6dad78b7fe7d002aeb089bc7efb",
            "train.json": "9d77f52d2af078dbcecffad72c6b22cb6f8fe89c68db0ad99e811be06ec46800",
            "valid.json": "977a3b91bdbdb12186b44ee422a51eac85de343b8159e4973b16cf4b3d245d32",
            "test.json": "7a3fad03b9ad609e91a276e92b3bc31fbb8a48eacbc1bf42853cd440a4f6c080"},
}


def _wrench(name: str) -> RegistryDataset:
    """WRENCH's own splits with its labeling functions' votes (weak_labels), for label-model benchmarks."""
    files = tuple(_pinned(*_WRENCH, f"datasets/{name}/{f}", f"wrench_{name}/{f}", sha)
                  for f, sha in _WRENCH_FILES[name].items())
    return RegistryDataset(f"wrench_{name}", files, reader="read_wrench",
                           citation="WRENCH (Zhang et al., NeurIPS 2021 Datasets and Benchmarks)")


REGISTRY: dict[str, RegistryDataset] = {
    "wrench_youtube": _wrench("youtube"),
    "wrench_sms": _wrench("sms"),
    "sms_spam_uci": RegistryDataset(
        "sms_spam_uci",
        (
            _pinned(*_SMS, "smsspamcollection/SMSSpamCollection", "sms_spam_uci/SMSSpamCollection",
                    "7d039a24a6083ed9ef0f806ebad56bbb976e3aeb8de05669173bfdc4996c239d"),
        ),
        reader="read_sms_spam",
        citation="SMS Spam Collection v1 (Almeida, Gómez Hidalgo & Yamakami, DocEng 2011)",
    ),
    "youtube_spam_uci": RegistryDataset(
        "youtube_spam_uci",
        tuple(_pinned(*_YT, f"data/{name}", f"youtube_spam_uci/{name}", sha) for name, sha in _YT_FILES.items()),
        reader="read_youtube_spam",
        citation="YouTube Spam Collection v1 (Alberto, Lochter & Almeida, ICMLA 2015)",
    ),
    "ag_news": RegistryDataset(
        "ag_news",
        (
            _pinned(*_AG, "data/ag_news_csv/test.csv", "ag_news/test.csv",
                    "521465c2428ed7f02f8d6db6ffdd4b5447c1c701962353eb2c40d548c3c85699"),
        ),
        reader="read_ag_news",
        citation="AG's News topic classification, test split (Zhang, Zhao & LeCun, NeurIPS 2015)",
    ),
    "sst2_phrases": RegistryDataset(
        "sst2_phrases",
        (
            _pinned(*_SST2, "data/SST-2/original/train.tsv", "sst2_phrases/train.tsv",
                    "48eac26399f8456935f81dd9e3a745c1430adb6c62e233ccfe22db4a0d15d1d1"),
        ),
        reader="read_sst2_phrases",
        citation="Stanford Sentiment Treebank, GLUE SST-2 train (Socher et al., EMNLP 2013; Wang et al., ICLR 2019)",
    ),
}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(pinned: PinnedFile, dest: Path, timeout: float = 60.0) -> None:
    try:
        with urllib.request.urlopen(pinned.url, timeout=timeout) as resp:
            payload = resp.read()
    except OSError as exc:
        raise DataError(f"{dest}: not in the data home and download of {pinned.url} failed: {exc}") from None
    actual = hashlib.sha256(payload).hexdigest()
    if actual != pinned.sha256:
        raise DataError(f"{pinned.url}: checksum mismatch: expected sha256 {pinned.sha256}, got {actual}")
    atomic_write_bytes(dest, payload)


def fetch(name: str, home: Path | None = None) -> list[Path]:
    """Local, verified paths of a registry dataset's files, downloading any that are missing."""
    if name not in REGISTRY:
        raise DataError(f"dataset registry: unknown dataset '{name}' (known: {', '.join(sorted(REGISTRY))})")
    home = home or data_home()
    paths = []
    for pinned in REGISTRY[name].files:
        dest = home / pinned.relpath
        if not dest.exists():
            _download(pinned, dest)
        actual = sha256_of(dest)
        if actual != pinned.sha256:
            raise DataError(f"{dest}: checksum mismatch: expected sha256 {pinned.sha256}, got {actual}")
        paths.append(dest)
    return paths
