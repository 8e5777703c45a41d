"""QR codes as SVG (segno): a booking's reference for the kiosk's scanner, a ticket's public page."""

from __future__ import annotations

import io

import segno


def qr_svg(data: str, *, scale: int = 4, border: int = 2) -> str:
    """A standalone SVG document of a QR code holding `data` (error correction M)."""
    buffer = io.BytesIO()
    segno.make(data, error="m").save(buffer, kind="svg", scale=scale, border=border, xmldecl=False)
    return buffer.getvalue().decode("ascii")
