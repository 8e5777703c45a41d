"""Arabic is a first language: every message in the code has an Arabic translation in the catalog."""

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
KEYWORDS = {"_": None, "N_": None, "gettext": None, "_l": None, "lazy_gettext": None, "ngettext": (1, 2)}
METHOD_MAP = [("**/templates/**.html", "jinja2"), ("**.py", "python")]


def _source_messages() -> set[str]:
    found = set()
    for folder in ("app", "booking", "queue", "notifications"):
        for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT / folder, method_map=METHOD_MAP, keywords=KEYWORDS
        ):
            found.add(message if isinstance(message, str) else message[0])
    return found


def _catalog(language: str):
    with open(ROOT / "app" / "translations" / language / "LC_MESSAGES" / "messages.po", "rb") as f:
        return read_po(f, locale=language)


def test_every_message_has_an_arabic_translation():
    catalog = _catalog("ar")
    translated = {
        (m.id if isinstance(m.id, str) else m.id[0])
        for m in catalog
        if m.id and m.string and (m.string if isinstance(m.string, str) else m.string[0]) and not m.fuzzy
    }
    missing = sorted(_source_messages() - translated)
    assert not missing, "run `make extract-messages` and translate in app/translations/ar:\n" + "\n".join(
        missing
    )


def test_arabic_keeps_the_placeholders():
    for message in _catalog("ar"):
        if not message.id or not message.string or isinstance(message.id, tuple):
            continue
        for placeholder in ("%(code)s", "%(reference)s", "%(counter)s", "%(number)s"):
            assert (placeholder in message.id) == (placeholder in message.string), message.id
