"""EPC binary decoding (TDS 1.x): SGTIN-96 and SSCC-96, with the filter value and strict length checks.

Written here rather than taken from pyepc/epcpy: both drop the filter value, accept over-long input
(a PC word left in front of the EPC) and pyepc may fetch a company-prefix table over the network.
"""

from __future__ import annotations

import re

from gateway.station.scan.gs1check import check_digit

_HEX = re.compile(r"[0-9A-Fa-f]+")

SGTIN96 = 0x30
SSCC96 = 0x31
# Partition value → (company prefix bits, digits, item reference (or serial reference) bits, digits).
_SGTIN_PARTITIONS = ((40, 12, 4, 1), (37, 11, 7, 2), (34, 10, 10, 3), (30, 9, 14, 4), (27, 8, 17, 5), (24, 7, 20, 6), (20, 6, 24, 7))
_SSCC_PARTITIONS = ((40, 12, 18, 5), (37, 11, 21, 6), (34, 10, 24, 7), (30, 9, 28, 8), (27, 8, 31, 9), (24, 7, 34, 10), (20, 6, 38, 11))
# Headers of other 96-bit-or-longer EPC schemes we recognise but do not decode (TDS table 14-1).
_OTHER = {0x32: "sgln-96", 0x33: "grai-96", 0x34: "giai-96", 0x35: "gid-96", 0x36: "sgtin-198", 0x2C: "gdti-96", 0x2D: "gsrn-96"}


def looks_like_epc(text: str) -> bool:
    """Hex of 24+ digits whose first byte is an EPC header this module knows."""
    return len(text) >= 24 and len(text) % 2 == 0 and _HEX.fullmatch(text) is not None and (int(text[:2], 16) in (SGTIN96, SSCC96) or int(text[:2], 16) in _OTHER)


def decode(hex_text: str) -> dict:
    """Decode an EPC given as hex. Returns fields (`epc_uri`, `epc_filter`, `gtin`/`sscc`, `serial`) and
    `errors`/`error_codes`; a value that is not an EPC scheme we decode yields only errors."""
    out: dict = {"epc_hex": hex_text.upper(), "errors": [], "error_codes": []}

    def fail(code: str, message: str) -> dict:
        out["errors"].append(message)
        out["error_codes"].append(code)
        return out

    if not hex_text or _HEX.fullmatch(hex_text) is None:
        return fail("epc_not_hex", f"EPC must be hex digits, got {hex_text!r}")
    header = int(hex_text[:2], 16)
    bits = len(hex_text) * 4
    if header not in (SGTIN96, SSCC96):
        name = _OTHER.get(header)
        if name:
            return fail("epc_unsupported", f"EPC scheme {name} (header 0x{header:02X}) is not decoded")
        return fail("epc_unknown_header", f"header 0x{header:02X} is not an EPC scheme (a TID or user data?)")
    scheme = "sgtin-96" if header == SGTIN96 else "sscc-96"
    if bits != 96:
        hint = " (a PC word or CRC left around the EPC?)" if bits > 96 else ""
        return fail("epc_length", f"{scheme} needs exactly 96 bits, got {bits}{hint}")
    value = int(hex_text, 16)
    filt = (value >> 85) & 0x7
    partition = (value >> 82) & 0x7
    out["epc_scheme"] = scheme
    out["epc_filter"] = filt
    if partition == 7:
        return fail("epc_partition", f"{scheme}: partition value 7 is reserved")
    if header == SGTIN96:
        cbits, cdigits, ibits, idigits = _SGTIN_PARTITIONS[partition]
        company = (value >> (38 + ibits)) & ((1 << cbits) - 1)
        item = (value >> 38) & ((1 << ibits) - 1)
        serial = value & ((1 << 38) - 1)
        if company >= 10**cdigits or item >= 10**idigits:
            return fail("epc_field_range", f"sgtin-96: company prefix or item reference too large for partition {partition}")
        c, i = f"{company:0{cdigits}d}", f"{item:0{idigits}d}"
        body = i[0] + c + i[1:]
        out["epc_uri"] = f"urn:epc:id:sgtin:{c}.{i}.{serial}"
        out["gtin"] = body + str(check_digit(body))
        out["serial"] = str(serial)
    else:
        cbits, cdigits, sbits, sdigits = _SSCC_PARTITIONS[partition]
        company = (value >> (24 + sbits)) & ((1 << cbits) - 1)
        ref = (value >> 24) & ((1 << sbits) - 1)
        if value & 0xFFFFFF:
            return fail("epc_reserved_bits", "sscc-96: the 24 unallocated bits are not zero")
        if company >= 10**cdigits or ref >= 10**sdigits:
            return fail("epc_field_range", f"sscc-96: company prefix or serial reference too large for partition {partition}")
        c, s = f"{company:0{cdigits}d}", f"{ref:0{sdigits}d}"
        body = s[0] + c + s[1:]
        out["epc_uri"] = f"urn:epc:id:sscc:{c}.{s}"
        out["sscc"] = body + str(check_digit(body))
    return out
