"""The backup's byte transforms: what goes in comes out, and a stored archive that was cut short, tampered with,
reordered or decrypted with the wrong key is refused with an error that says so, never restored quietly."""

import os

import pytest

from tasks.backup.stream_codec import SEGMENT, Hashed, IntegrityError, compress, decompress, decrypt, encrypt

KEY = bytes(range(32))
DATA = os.urandom(100_000) * 30  # 3 MB: several encrypted segments


def chunked(data: bytes, size: int):
    return (data[i:i + size] for i in range(0, len(data), size))


def parts(stream) -> bytes:
    return b"".join(stream)


@pytest.mark.parametrize("size", [1, 4096, 3 * SEGMENT])
def test_compress_encrypt_then_decrypt_decompress_gives_the_same_bytes_whatever_the_chunking(size):
    sealed = parts(encrypt(compress(chunked(DATA, 65536)), KEY))
    assert parts(decompress(decrypt(chunked(sealed, size), KEY))) == DATA
    sealed = parts(encrypt(chunked(DATA, 65536), KEY))  # uncompressed: several segments
    assert len(sealed) > 2 * SEGMENT and parts(decrypt(chunked(sealed, max(size, 4096)), KEY)) == DATA


def test_an_empty_dump_still_ends_with_a_final_segment():
    assert parts(decrypt(encrypt(iter([]), KEY), KEY)) == b""


def test_a_flipped_byte_fails_authentication_naming_the_segment():
    sealed = bytearray(parts(encrypt(chunked(DATA, 65536), KEY)))
    sealed[16 + 4 + SEGMENT + 100] ^= 1  # inside the second segment
    with pytest.raises(IntegrityError, match="segment 1 failed authentication"):
        parts(decrypt([bytes(sealed)], KEY))


def test_an_archive_cut_at_a_segment_boundary_is_truncated_not_complete():
    sealed = parts(encrypt(chunked(DATA, 65536), KEY))
    first_segment_end = 16 + 4 + int.from_bytes(sealed[16:20], "big")
    with pytest.raises(IntegrityError, match="truncated"):
        parts(decrypt([sealed[:first_segment_end]], KEY))


def test_segments_swapped_are_refused():
    sealed = parts(encrypt(chunked(DATA, 65536), KEY))
    head, rest = sealed[:16], sealed[16:]
    n = 4 + int.from_bytes(rest[:4], "big")
    m = 4 + int.from_bytes(rest[n:n + 4], "big")
    swapped = head + rest[n:n + m] + rest[:n] + rest[n + m:]
    with pytest.raises(IntegrityError, match="failed authentication"):
        parts(decrypt([swapped], KEY))


def test_the_wrong_key_and_a_plain_file_are_refused():
    sealed = parts(encrypt([b"secret rows"], KEY))
    with pytest.raises(IntegrityError, match="segment 0 failed authentication"):
        parts(decrypt([sealed], bytes(32)))
    with pytest.raises(IntegrityError, match="bad magic"):
        parts(decrypt([b"PGDMP" + bytes(40)], KEY))
    with pytest.raises(ValueError, match="32 bytes"):
        parts(encrypt([b"x"], b"short"))


def test_a_compressed_archive_cut_short_or_flipped_is_an_integrity_error():
    packed = parts(compress(chunked(DATA, 65536)))
    with pytest.raises(IntegrityError, match="truncated"):
        parts(decompress([packed[:-10]]))
    flipped = bytearray(packed)
    flipped[len(flipped) // 2] ^= 0xFF
    with pytest.raises(IntegrityError):
        parts(decompress([bytes(flipped)]))


def test_hashed_counts_and_hashes_what_passed_through():
    import hashlib

    hashed = Hashed(chunked(DATA, 7777))
    assert parts(hashed) == DATA
    assert hashed.size == len(DATA) and hashed.sha256 == hashlib.sha256(DATA).hexdigest()
    counted = Hashed(chunked(DATA, 7777), hash=False)
    parts(counted)
    assert counted.size == len(DATA) and counted.sha256 is None
