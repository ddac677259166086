"""The per-user cache: only directories and files this user alone could have written are read back, and a
damaged tokenizer is trained again and replaced rather than breaking every biography run."""

import os
import stat
import warnings

import numpy as np
import pytest

from learnlab import cache
from learnlab.tasks import biographies as bio

VOCAB = 600  # a small tokenizer: trained in a fraction of a second


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("LEARNLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


# --- cache directories -------------------------------------------------------------------------------------


def test_a_new_cache_directory_is_private_whatever_the_umask(root):
    old = os.umask(0o002)
    try:
        path = cache.private_dir("kernels")
    finally:
        os.umask(old)
    assert path == (root / "kernels").resolve() and mode(path) == mode(root) == 0o700
    assert cache.private_dir("kernels") == path  # and accepted when it exists


@pytest.mark.parametrize("bits", [0o777, 0o775, 0o757, 0o722])
def test_a_directory_others_can_write_to_is_refused(root, bits):
    (root / "kernels").mkdir(parents=True)
    os.chmod(root / "kernels", bits)
    with pytest.raises(cache.UntrustedCache, match="writable"):
        cache.private_dir("kernels")
    assert mode(root / "kernels") == bits  # reported, not silently changed


def test_a_world_writable_parent_is_refused_unless_sticky(root):
    cache.private_dir("kernels")
    os.chmod(root, 0o777)
    with pytest.raises(cache.UntrustedCache, match="above the cache, is world-writable"):
        cache.private_dir("kernels")
    os.chmod(root, 0o1777)  # as /tmp: nobody else may rename or replace what is ours in it
    assert cache.private_dir("kernels")


def test_a_link_to_a_world_writable_directory_is_refused(root, tmp_path):
    (tmp_path / "shared").mkdir(mode=0o777)
    os.chmod(tmp_path / "shared", 0o777)
    root.mkdir()
    (root / "kernels").symlink_to(tmp_path / "shared")
    with pytest.raises(cache.UntrustedCache, match="writable"):
        cache.private_dir("kernels")


@pytest.mark.skipif(os.getuid() != 0, reason="only root can give a directory to another user")
def test_a_directory_owned_by_another_user_is_refused(root):
    path = cache.private_dir("kernels")
    os.chown(path, 12345, -1)
    with pytest.raises(cache.UntrustedCache, match="owned by uid 12345"):
        cache.private_dir("kernels")


def test_files_others_could_have_written_are_untrusted(tmp_path):
    ours = tmp_path / "ours"
    cache.write_atomic(ours, b"data")
    assert cache.untrusted(ours) is None and mode(ours) == 0o600 and ours.read_bytes() == b"data"
    assert [p.name for p in tmp_path.iterdir()] == ["ours"]  # no temporary file left behind
    os.chmod(ours, 0o620)
    assert "writable" in cache.untrusted(ours)
    (tmp_path / "link").symlink_to(ours)
    assert "symbolic link" in cache.untrusted(tmp_path / "link")
    assert cache.untrusted(tmp_path / "missing")


# --- the tokenizer cache -----------------------------------------------------------------------------------


def cached_file(root):
    (path,) = (root / "tokenizers").iterdir()
    return path


DAMAGE = {
    "truncated": lambda path: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2]),
    "garbage": lambda path: path.write_bytes(os.urandom(4096)),
    "empty": lambda path: path.write_bytes(b""),
    "not-a-tokenizer": lambda path: path.write_text('{"version": "1.0"}'),
    "another-tokenizer": lambda path: path.write_text(bio._train(300, 100, 0).to_str()),
    "wrong-specials": lambda path: path.write_text(path.read_text().replace(bio.PAD, "<nope>")),
    "group-writable": lambda path: os.chmod(path, 0o664),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_tokenizer_cache_is_trained_again_and_repaired(root, damage):
    fresh = bio.load_tokenizer(VOCAB)
    path = cached_file(root)
    good = path.read_bytes()
    DAMAGE[damage](path)
    with pytest.warns(UserWarning, match="cached tokenizer .* training it again"):
        tokenizer = bio.load_tokenizer(VOCAB)
    assert tokenizer.to_str() == fresh.to_str()
    assert path.read_bytes() == good and mode(path) == 0o600 and cached_file(root) == path
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # repaired for good: the next run reads it back without a word
        encoder = bio.BiographyEncoder(bio.World.generate(50, 10, seed=1), bio.load_tokenizer(VOCAB))
    batch = encoder.sample([0, 1], "train", np.random.default_rng(0), 160)
    assert encoder.decode(batch.tokens[0]).count(".") == len(bio.ATTRIBUTES)


def test_a_whole_tokenizer_cache_is_read_back_without_retraining(root, monkeypatch):
    first = bio.load_tokenizer(VOCAB)
    monkeypatch.setattr(bio, "_train", lambda *a: pytest.fail("retrained a valid cached tokenizer"))
    assert bio.load_tokenizer(VOCAB).to_str() == first.to_str()


def test_an_untrusted_tokenizer_directory_is_not_read(root):
    bio.load_tokenizer(VOCAB)
    path = cached_file(root)
    planted = bio._train(VOCAB, 100, 5).to_str()  # a valid tokenizer of the right size, but not ours
    path.write_text(planted)
    os.chmod(root / "tokenizers", 0o777)
    with pytest.warns(UserWarning, match="not using the tokenizer cache"):
        tokenizer = bio.load_tokenizer(VOCAB)
    assert tokenizer.to_str() != planted and path.read_text() == planted  # trained afresh; the cache untouched
