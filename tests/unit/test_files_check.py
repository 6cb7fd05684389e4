"""What a file is, decided by its bytes: sniffing, declared-type mismatches, size, wildcards, names."""

from __future__ import annotations

import pytest

from gateway.files import (
    FilePolicy,
    FileRejected,
    check_file,
    content_disposition,
    fit_extension,
    safe_name,
    sniff,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 20
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x01" * 20
GIF = b"GIF89a" + b"\x01\x00\x01\x00" + b"\x00" * 10
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 20
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"
EXE = b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 50
ELF = b"\x7fELF\x02\x01\x01" + b"\x00" * 20
TEXT = "Order NW-1234567 — arrived broken.\n".encode()

DEFAULT = FilePolicy(
    max_bytes=1024,
    allowed_types=frozenset({"image/jpeg", "image/png", "image/gif", "image/webp", "application/pdf", "text/plain"}),
)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (PNG, "image/png"),
        (JPEG, "image/jpeg"),
        (GIF, "image/gif"),
        (b"GIF87a" + b"\x00" * 10, "image/gif"),
        (WEBP, "image/webp"),
        (PDF, "application/pdf"),
        (TEXT, "text/plain"),
        (EXE, "application/x-msdownload"),
        (ELF, "application/x-executable"),
        (b"PK\x03\x04rest", "application/zip"),
        (b"text with a NUL\x00 byte", None),
        (b"\xff\xfe\xfa not utf-8", None),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", None),  # RIFF, but audio: not WebP
    ],
)
def test_the_type_comes_from_the_bytes(data: bytes, expected: str | None) -> None:
    assert sniff(data) == expected


def test_a_declared_type_matching_the_bytes_is_accepted_and_returned() -> None:
    assert check_file("photo.png", "image/png", PNG, DEFAULT) == "image/png"
    assert check_file("scan.pdf", "application/pdf; name=scan.pdf", PDF, DEFAULT) == "application/pdf"
    assert check_file("note.txt", "text/plain; charset=utf-8", TEXT, DEFAULT) == "text/plain"
    # Aliases browsers send for the same type.
    assert check_file("old.jpg", "image/pjpeg", JPEG, DEFAULT) == "image/jpeg"
    assert check_file("x.jpg", "IMAGE/JPG", JPEG, DEFAULT) == "image/jpeg"


@pytest.mark.parametrize("declared", ["", "application/octet-stream", "binary/octet-stream"])
def test_a_missing_or_generic_declared_type_takes_the_sniffed_one(declared: str) -> None:
    assert check_file("upload", declared, GIF, DEFAULT) == "image/gif"
    assert check_file("upload", declared, WEBP, DEFAULT) == "image/webp"


def test_text_declared_as_another_text_type_is_plain_text() -> None:
    assert check_file("orders.csv", "text/csv", b"a,b\n1,2\n", DEFAULT) == "text/plain"


def test_a_png_whose_bytes_are_a_pdf_is_refused_as_a_mismatch() -> None:
    with pytest.raises(FileRejected) as caught:
        check_file("photo.png", "image/png", PDF, DEFAULT)
    assert caught.value.code == "type_mismatch"
    assert caught.value.reason == "photo.png says it is image/png but its content is application/pdf"


def test_an_executable_posing_as_a_photo_is_refused_by_its_real_type() -> None:
    with pytest.raises(FileRejected) as caught:
        check_file("photo.png", "image/png", EXE, DEFAULT)
    assert caught.value.code == "unsupported_type"
    assert caught.value.reason == "photo.png: type application/x-msdownload is not accepted"
    with pytest.raises(FileRejected) as caught:
        check_file("photo.exe", "application/octet-stream", EXE, DEFAULT)
    assert caught.value.reason == "photo.exe: type application/x-msdownload is not accepted"


def test_bytes_matching_nothing_known_are_refused() -> None:
    with pytest.raises(FileRejected) as caught:
        check_file("blob.bin", "application/octet-stream", b"\x00\x01\x02\x03binary", DEFAULT)
    assert caught.value.code == "unsupported_type"
    assert "blob.bin" in caught.value.reason


def test_a_recognised_type_outside_the_allow_list_is_refused() -> None:
    only_pdf = FilePolicy(max_bytes=1024, allowed_types=frozenset({"application/pdf"}))
    with pytest.raises(FileRejected) as caught:
        check_file("photo.png", "image/png", PNG, only_pdf)
    assert caught.value.code == "unsupported_type"
    assert caught.value.reason == "photo.png: type image/png is not accepted"
    assert check_file("doc.pdf", "application/pdf", PDF, only_pdf) == "application/pdf"


def test_wildcards_allow_a_whole_family() -> None:
    images = FilePolicy(max_bytes=1024, allowed_types=frozenset({"image/*"}))
    for data in (PNG, JPEG, GIF, WEBP):
        assert check_file("x", "", data, images).startswith("image/")
    with pytest.raises(FileRejected):
        check_file("x.pdf", "application/pdf", PDF, images)
    with pytest.raises(FileRejected):
        check_file("x.txt", "text/plain", TEXT, images)
    anything = FilePolicy(max_bytes=1024, allowed_types=frozenset({"*/*"}))
    assert check_file("a.zip", "application/zip", b"PK\x03\x04rest", anything) == "application/zip"


def test_size_limits() -> None:
    policy = FilePolicy(max_bytes=len(PNG), allowed_types=frozenset({"image/png"}))
    assert check_file("fits.png", "image/png", PNG, policy) == "image/png"
    with pytest.raises(FileRejected) as caught:
        check_file("big.png", "image/png", PNG + b"\x00", policy)
    assert caught.value.code == "file_too_large"
    assert caught.value.reason.startswith("big.png is 37 bytes; files can be at most 36 bytes")
    with pytest.raises(FileRejected) as caught:
        check_file("empty.png", "image/png", b"", policy)
    assert caught.value.code == "empty_file"
    assert caught.value.reason == "empty.png is empty"
    ten_mb = FilePolicy(max_bytes=10 * 1024 * 1024, allowed_types=frozenset({"text/plain"}))
    with pytest.raises(FileRejected) as caught:
        check_file("log.txt", "text/plain", b"a" * (10 * 1024 * 1024 + 1), ten_mb)
    assert "at most 10 MB" in caught.value.reason


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("photo.png", "photo.png"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\ada\\Desktop\\receipt.pdf", "receipt.pdf"),
        ("in\x00voice\x1b[31m.pdf", "invoice[31m.pdf"),
        ("photo\u202egnp.exe", "photognp.exe"),  # right-to-left override hides the real extension
        ("line\nbreak.txt", "line break.txt"),
        ("..hidden", "hidden"),
        ('what?"<>|*.txt', "what______.txt"),
        ("Café ümlaut 写真.jpg", "Café ümlaut 写真.jpg"),
        ("", "file"),
        ("/", "file"),
        ("...", "file"),
    ],
)
def test_safe_name(raw: str, expected: str) -> None:
    assert safe_name(raw) == expected


def test_safe_name_caps_length_and_keeps_the_extension() -> None:
    name = safe_name("a" * 500 + ".pdf")
    assert len(name) == 120 and name.endswith(".pdf")
    assert len(safe_name("b" * 500)) == 120


def test_a_name_that_promises_another_type_gets_the_real_extension() -> None:
    assert fit_extension("invoice.exe", "image/png") == "invoice.exe.png"
    assert fit_extension("photo.JPG", "image/jpeg") == "photo.JPG"
    assert fit_extension("report", "application/pdf") == "report.pdf"
    assert fit_extension("data.zip", "application/zip") == "data.zip"  # no table entry: left alone


def test_content_disposition_inline_for_images_and_pdf_attachment_otherwise() -> None:
    assert content_disposition("a.png", "image/png") == "inline; filename=\"a.png\"; filename*=UTF-8''a.png"
    assert content_disposition("Über plan.txt", "text/plain") == (
        "attachment; filename=\"_ber plan.txt\"; filename*=UTF-8''%C3%9Cber%20plan.txt"
    )
    assert content_disposition("x.pdf", "application/pdf").startswith("inline;")
