"""Helpers for the floor pages' browser tests: sign-in and the printed ticket's PDF."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.factories import PASSWORD

MM_PER_POINT = 25.4 / 72


def sign_in(page, account) -> None:
    """Sign a staff account in on a page showing the shared staff sign-in form."""
    page.wait_for_selector("#login:not([hidden])", timeout=10_000)
    page.fill("#national_id", account.national_id)
    page.fill("#password", PASSWORD)
    page.click("#login-submit")


def pdf_page_sizes_mm(pdf: bytes) -> list[tuple[float, float]]:
    """Each page's MediaBox in millimetres (Chromium writes them uncompressed)."""
    boxes = re.findall(rb"/MediaBox\s*\[\s*([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)\s*\]", pdf)
    return [
        (round((float(x1) - float(x0)) * MM_PER_POINT, 1), round((float(y1) - float(y0)) * MM_PER_POINT, 1))
        for x0, y0, x1, y1 in boxes
    ]


def pdftoppm() -> str:
    """Poppler's pdftoppm (Debian's poppler-utils); missing → skip locally, fail under CI=true."""
    path = shutil.which("pdftoppm")
    if not path:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but pdftoppm is not installed (apt-get install poppler-utils)")
        pytest.skip("pdftoppm is not installed (apt-get install poppler-utils)")
    return path


def qr_texts_in_pdf(pdf: bytes, dpi: int = 200) -> list[str]:
    """The QR codes found on the PDF's first page, rendered in grey by pdftoppm and read by zxing-cpp."""
    import zxingcpp

    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "ticket.pdf"
        source.write_bytes(pdf)
        command = [pdftoppm(), "-gray", "-r", str(dpi), "-f", "1", "-l", "1", str(source)]
        subprocess.run([*command, str(Path(folder) / "page")], check=True, timeout=30)
        image = next(Path(folder).glob("page*.pgm")).read_bytes()
    header = re.match(rb"P5\s+(\d+)\s+(\d+)\s+(\d+)\s", image)
    assert header, "pdftoppm -gray writes a binary PGM"
    width, height = int(header.group(1)), int(header.group(2))
    pixels = memoryview(image[header.end() : header.end() + width * height]).cast("B", (height, width))
    return [code.text for code in zxingcpp.read_barcodes(pixels, formats=zxingcpp.BarcodeFormat.QRCode)]
