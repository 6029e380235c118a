from __future__ import annotations

import numpy as np
import pytest
import torch

from timbrelab.data.datasets import SyntheticMixtures
from timbrelab.io import save_npz

SECONDS = 1.0


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[k].shape == b[k].shape and a[k].numpy().tobytes() == b[k].numpy().tobytes() for k in a
    )


@pytest.fixture(scope="module")
def dataset():
    return SyntheticMixtures(4, seconds=SECONDS, instruments=(1, 3), seed=5)


def test_items_have_the_documented_shapes(dataset):
    item = dataset[0]
    n, t = round(SECONDS * 22050), 1 + round(SECONDS * 22050) // 256
    assert item["audio"].shape == (n,) and item["audio"].dtype == torch.float32
    for key in ("frame", "onset", "offset"):
        assert item[key].shape == (88, t) and item[key].dtype == torch.float32
    assert item["stem_frame"].shape == (3, 88, t)
    k = int(item["n_sources"])
    assert 1 <= k <= 3 and (item["programs"][:k] >= 0).all() and (item["programs"][k:] == -1).all()
    assert not item["stem_frame"][k:].any()
    assert item["index"].shape == item["n_sources"].shape == ()
    assert int(item["index"]) == 0 and "stems" not in item and "dominant_source" not in item
    with pytest.raises(IndexError):
        dataset[4]
    assert _equal(dataset[-1], dataset[3])


def test_items_are_pure_functions_of_seed_and_index(dataset):
    other = SyntheticMixtures(4, seconds=SECONDS, instruments=(1, 3), seed=5)
    assert _equal(dataset[2], other[2])
    assert _equal(dataset[1], other[1])  # in another order: nothing carries over
    assert not torch.equal(dataset[1]["audio"], dataset[2]["audio"])
    reseeded = SyntheticMixtures(4, seconds=SECONDS, instruments=(1, 3), seed=6)
    assert not torch.equal(reseeded[1]["audio"], dataset[1]["audio"])


def test_dataloader_with_two_workers_matches(dataset):
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=2)
    batches = list(loader)
    assert len(batches) == 2 and batches[0]["audio"].shape == (2, round(SECONDS * 22050))
    for b, batch in enumerate(batches):
        for j in range(2):
            expected = dataset[2 * b + j]
            assert all(
                batch[key][j].numpy().tobytes() == expected[key].numpy().tobytes()
                for key in expected
            )


def test_cache_is_written_once_and_read_back(tmp_path):
    kw = dict(seconds=0.5, instruments=2, seed=1, stems=True, dominant=True)
    cached = SyntheticMixtures(2, cache_dir=tmp_path, **kw)
    first = cached[1]
    files = list(tmp_path.rglob("*.npz"))
    assert [f.name for f in files] == ["0000001.npz"]
    mtime = files[0].stat().st_mtime_ns
    again = SyntheticMixtures(2, cache_dir=tmp_path, **kw)[1]
    assert files[0].stat().st_mtime_ns == mtime  # read, not rewritten
    assert _equal(first, again) and _equal(first, SyntheticMixtures(2, **kw)[1])
    assert first["stems"].shape == (2, round(0.5 * 22050))
    assert torch.equal(first["audio"], first["stems"].sum(0))
    assert first["dominant_source"].dtype == torch.int64
    # other settings never read this configuration's items
    SyntheticMixtures(2, cache_dir=tmp_path, **(kw | dict(seed=2)))[1]
    assert len(list(tmp_path.rglob("*.npz"))) == 2
    assert not list(tmp_path.rglob("*.tmp"))


def test_save_npz_is_reproducible(tmp_path):
    arrays = {"a": np.arange(5, dtype=np.float32), "b": np.int64(3)}
    save_npz(tmp_path / "x.npz", arrays)
    save_npz(tmp_path / "y.npz", arrays)
    assert (tmp_path / "x.npz").read_bytes() == (tmp_path / "y.npz").read_bytes()
    with np.load(tmp_path / "x.npz") as loaded:
        assert np.array_equal(loaded["a"], arrays["a"]) and int(loaded["b"]) == 3


@pytest.mark.parametrize("bad", [dict(instruments=0), dict(instruments=(3, 2)),
                                 dict(instruments=9), dict(seconds=0), dict(seed=-1),
                                 dict(programs=[0, 1])])
def test_bad_settings(bad):
    with pytest.raises(ValueError):
        SyntheticMixtures(2, **(dict(instruments=2) | bad))


def test_new_data_options_reach_the_items_and_the_fingerprint():
    plain = SyntheticMixtures(1, seconds=1.0, instruments=1, seed=5)
    dense = SyntheticMixtures(1, seconds=1.0, instruments=1, seed=5, style="dense",
                              soundfonts="all", expression=True)  # fmt: skip
    assert dense._fingerprint() != plain._fingerprint()
    assert dense.mixture(0).soundfonts[0] in dense.soundfonts
    assert not np.array_equal(dense.arrays(0)["audio"], plain.arrays(0)["audio"])
    with pytest.raises(ValueError, match="not installed"):
        SyntheticMixtures(1, soundfonts=["no-such-soundfont"])
